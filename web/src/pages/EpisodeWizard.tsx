// A new episode in steps: source → speakers and voices → script (generated or written) →
// edit lines → render with progress → listen.

import { useState } from 'react'
import type { FormEvent } from 'react'
import { ApiError, createEpisode, generateScript, getPodcast } from '../api.ts'
import type { Episode, Speaker } from '../api.ts'
import { EpisodeView } from '../components/EpisodeView.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { LineEditor } from '../components/LineEditor.tsx'
import { Link } from '../components/Link.tsx'
import { PreviewButton, VoiceSelect } from '../components/VoiceSelect.tsx'
import { useI18n } from '../i18n.ts'
import type { MessageKey } from '../i18n.ts'
import { parseDialogue } from '../lib/dialogue.ts'
import type { DialogueProblem } from '../lib/dialogue.ts'
import { keyed, unkeyed } from '../lib/lines.ts'
import type { EditableLine } from '../lib/lines.ts'
import { useLoad } from '../lib/useLoad.ts'
import { useVoiceCatalog } from '../lib/useVoiceCatalog.ts'
import { speakerVoice } from '../lib/voices.ts'

type SourceKind = 'topic' | 'text' | 'dialogue'
type Step = 'source' | 'speakers' | 'edit' | 'render'

const STEPS: readonly { step: Step; label: MessageKey }[] = [
  { step: 'source', label: 'wizard.step.source' },
  { step: 'speakers', label: 'wizard.step.speakers' },
  { step: 'edit', label: 'wizard.step.edit' },
  { step: 'render', label: 'wizard.step.render' },
]

const PROBLEMS: Record<DialogueProblem['kind'], MessageKey> = {
  orphan_text: 'wizard.problem.orphan',
  empty_line: 'wizard.problem.empty',
  empty_chapter: 'wizard.problem.emptyChapter',
}

/** Default length asked of the script writer, in minutes. */
const DEFAULT_MINUTES = 5
const DEFAULT_PAUSE_MS = 350

/** A number field's text as a whole number within bounds; blank or junk gives the default. */
function clamp(text: string, min: number, max: number, fallback: number): number {
  const value = Math.round(Number(text))
  if (text.trim() === '' || !Number.isFinite(value)) return fallback
  return Math.min(max, Math.max(min, value))
}

export default function EpisodeWizard({ params }: { params: Record<string, string> }) {
  const { t, language } = useI18n()
  const podcastId = params.id ?? ''
  const show = useLoad((signal) => getPodcast(podcastId, { signal }), podcastId)
  const catalog = useVoiceCatalog()
  const [step, setStep] = useState<Step>('source')
  const [kind, setKind] = useState<SourceKind>('topic')
  const [source, setSource] = useState('')
  const [speakers, setSpeakers] = useState<Speaker[]>([])
  const [minutes, setMinutes] = useState(String(DEFAULT_MINUTES))
  const [style, setStyle] = useState('')
  const [title, setTitle] = useState('')
  const [lines, setLines] = useState<EditableLine[]>([])
  const [pauseMs, setPauseMs] = useState(String(DEFAULT_PAUSE_MS))
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const [episode, setEpisode] = useState<Episode | null>(null)

  const { voices, providers } = catalog
  const voiceLanguage = show.data?.language ?? language
  const parsed = kind === 'dialogue' ? parseDialogue(source) : null

  const toSpeakers = (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    const names = parsed !== null ? parsed.speakers : speakers.length > 0 ? speakers.map((s) => s.name) : [t('wizard.host'), t('wizard.guest')]
    setSpeakers(names.map((name) => speakers.find((s) => s.name === name) ?? { name, voice: '' }))
    setStep('speakers')
  }

  const voiced = speakers.map((s, i) => ({
    ...s,
    voice: s.voice === '' ? speakerVoice(voices, providers, voiceLanguage, i) : s.voice,
  }))

  const toEditor = (lines: EditableLine[]) => {
    setSpeakers(voiced)
    setLines(lines)
    if (title === '') setTitle(parsed?.lines[0]?.chapter ?? (kind === 'topic' ? source.trim().slice(0, 80) : ''))
    setStep('edit')
  }

  const writeScript = async () => {
    setBusy(true)
    setError(null)
    try {
      const script = await generateScript(podcastId, {
        source: kind === 'topic' ? { topic: source.trim() } : { text: source.trim() },
        speakers: voiced,
        minutes: clamp(minutes, 1, 60, DEFAULT_MINUTES),
        ...(show.data?.language ? { language: show.data.language } : {}),
        ...(style.trim() === '' ? {} : { style: style.trim() }),
      })
      toEditor(script.map(keyed))
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(false)
    }
  }

  const render = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const used = new Set(lines.map((l) => l.speaker))
      setEpisode(
        await createEpisode(podcastId, {
          title: title.trim(),
          lines: unkeyed(lines),
          speakers: speakers.filter((s) => used.has(s.name)),
          pause_ms: clamp(pauseMs, 0, 5000, DEFAULT_PAUSE_MS),
        }),
      )
      setStep('render')
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(false)
    }
  }

  const noWriter = error instanceof ApiError && error.code === 'provider_unavailable'
  const stepIndex = STEPS.findIndex((s) => s.step === step)

  return (
    <div className="stack">
      <p>
        <Link to={`/podcasts/${podcastId}`}>← {show.data?.title ?? t('podcasts.title')}</Link>
      </p>
      <h1>{t('wizard.title')}</h1>
      <ol className="steps" aria-label={t('wizard.progress')}>
        {STEPS.map((s, index) => (
          <li key={s.step} aria-current={s.step === step ? 'step' : undefined} className={index < stepIndex ? 'done' : undefined}>
            {t(s.label)}
          </li>
        ))}
      </ol>
      {show.state.kind === 'failed' && <ErrorMessage error={show.state.error} />}
      {catalog.state.kind === 'failed' && <ErrorMessage error={catalog.state.error} title={t('studio.voicesFailed')} />}

      {step === 'source' && (
        <form className="card form" onSubmit={toSpeakers}>
          <fieldset className="choices">
            <legend>{t('wizard.sourceKind')}</legend>
            {(['topic', 'text', 'dialogue'] as const).map((k) => (
              <label key={k} className="check-field">
                <input type="radio" name="source-kind" value={k} checked={kind === k} onChange={() => setKind(k)} />
                <span>{t(`wizard.source.${k}`)}</span>
              </label>
            ))}
          </fieldset>
          <Field label={<>{t(`wizard.sourceLabel.${kind}`)}</>}>
            <textarea
              value={source}
              onChange={(event) => setSource(event.target.value)}
              rows={kind === 'topic' ? 3 : 12}
              required
              aria-describedby={kind === 'dialogue' ? 'dialogue-hint' : undefined}
            />
          </Field>
          {parsed !== null && (
            <>
              <p id="dialogue-hint" className="muted">
                {t('wizard.dialogueHint')}
              </p>
              <div className="preview" aria-live="polite">
                <p>
                  {t('wizard.parsed', { lines: parsed.lines.length, speakers: parsed.speakers.length })}
                  {parsed.speakers.length > 0 && `: ${parsed.speakers.join(', ')}`}
                </p>
                {parsed.problems.map((problem) => (
                  <p key={`${problem.line}-${problem.kind}`} className="error-inline">
                    {t(PROBLEMS[problem.kind], { line: problem.line })}
                  </p>
                ))}
              </div>
            </>
          )}
          <div className="actions">
            <button type="submit" className="button" disabled={parsed !== null && parsed.lines.length === 0}>
              {t('wizard.next')}
            </button>
          </div>
        </form>
      )}

      {step === 'speakers' && (
        <section className="card form" aria-labelledby="wizard-speakers">
          <h2 id="wizard-speakers">{t('wizard.step.speakers')}</h2>
          <ul className="speakers">
            {voiced.map((speaker, index) => (
              <li key={index} className="speaker">
                <Field label={<>{t('wizard.speakerName', { n: index + 1 })}</>}>
                  <input
                    value={speaker.name}
                    readOnly={kind === 'dialogue'}
                    required
                    onChange={(event) =>
                      setSpeakers(voiced.map((s, i) => (i === index ? { ...s, name: event.target.value } : s)))
                    }
                  />
                </Field>
                <div className="with-action">
                  <VoiceSelect
                    id={`speaker-voice-${index}`}
                    label={t('wizard.speakerVoice', { name: speaker.name })}
                    value={speaker.voice}
                    onChange={(voice) => setSpeakers(voiced.map((s, i) => (i === index ? { ...s, voice } : s)))}
                    voices={voices}
                    providers={providers}
                  />
                  <PreviewButton voice={speaker.voice} />
                </div>
                {kind !== 'dialogue' && voiced.length > 1 && (
                  <button
                    type="button"
                    className="button button-quiet button-danger"
                    onClick={() => setSpeakers(voiced.filter((_, i) => i !== index))}
                  >
                    {t('wizard.removeSpeaker')}
                  </button>
                )}
              </li>
            ))}
          </ul>
          {kind !== 'dialogue' && (
            <>
              <button
                type="button"
                className="button button-quiet"
                onClick={() => setSpeakers([...voiced, { name: t('wizard.speakerDefault', { n: voiced.length + 1 }), voice: '' }])}
              >
                {t('wizard.addSpeaker')}
              </button>
              <div className="grid-2">
                <Field label={t('wizard.minutes')}>
                  <input
                    type="number"
                    min={1}
                    max={60}
                    value={minutes}
                    onChange={(event) => setMinutes(event.target.value)}
                  />
                </Field>
                <Field label={t('wizard.style')}>
                  <input value={style} onChange={(event) => setStyle(event.target.value)} placeholder={t('wizard.stylePlaceholder')} />
                </Field>
              </div>
            </>
          )}
          {error !== null && <ErrorMessage error={error} />}
          {noWriter && (
            <div className="banner banner-info">
              <p>{t('wizard.noWriter')}</p>
              <button
                type="button"
                className="button button-quiet"
                onClick={() => {
                  setError(null)
                  setKind('dialogue')
                  setSource('')
                  setStep('source')
                }}
              >
                {t('wizard.pasteInstead')}
              </button>
            </div>
          )}
          <div className="actions">
            <button type="button" className="button button-quiet" onClick={() => setStep('source')}>
              {t('wizard.back')}
            </button>
            {kind === 'dialogue' && parsed !== null ? (
              <button type="button" className="button" onClick={() => toEditor(parsed.lines.map(keyed))}>
                {t('wizard.next')}
              </button>
            ) : (
              <>
                <button type="button" className="button" onClick={() => void writeScript()} disabled={busy || source.trim() === ''}>
                  {busy ? t('wizard.writing') : t('wizard.generate')}
                </button>
                <button
                  type="button"
                  className="button button-quiet"
                  onClick={() => toEditor(voiced.map((s) => keyed({ speaker: s.name, text: '' })))}
                >
                  {t('wizard.writeMyself')}
                </button>
              </>
            )}
          </div>
        </section>
      )}

      {step === 'edit' && (
        <form className="card form" onSubmit={(event) => void render(event)} aria-labelledby="wizard-edit">
          <h2 id="wizard-edit">{t('wizard.step.edit')}</h2>
          <Field label={t('wizard.episodeTitle')}>
            <input value={title} onChange={(event) => setTitle(event.target.value)} required />
          </Field>
          <LineEditor lines={lines} speakers={speakers.map((s) => s.name)} onChange={setLines} />
          <Field label={t('wizard.pause')}>
            <input
              type="number"
              min={0}
              max={5000}
              step={50}
              value={pauseMs}
              onChange={(event) => setPauseMs(event.target.value)}
            />
          </Field>
          {error !== null && <ErrorMessage error={error} />}
          <div className="actions">
            <button type="button" className="button button-quiet" onClick={() => setStep('speakers')}>
              {t('wizard.back')}
            </button>
            <button type="submit" className="button" disabled={busy || lines.length === 0}>
              {busy ? t('common.working') : t('wizard.render')}
            </button>
          </div>
        </form>
      )}

      {step === 'render' && episode !== null && (
        <section className="card stack-sm" aria-labelledby="wizard-render">
          <h2 id="wizard-render">{episode.title}</h2>
          <EpisodeView podcastId={podcastId} episode={episode} language={show.data?.language ?? null} />
          <p>
            <Link to={`/podcasts/${podcastId}`}>{t('wizard.backToShow')}</Link>
          </p>
        </section>
      )}
    </div>
  )
}
