// Text to speech: write, pick a voice, generate, follow the progress, listen.

import { useEffect, useState } from 'react'
import type { FormEvent } from 'react'
import { audioFileUrl, audioStreamUrl, createAudio, retryAudio } from '../api.ts'
import type { Audio, AudioFormat } from '../api.ts'
import { AudioPlayer } from '../components/AudioPlayer.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { Link } from '../components/Link.tsx'
import { ProgressBar } from '../components/ProgressBar.tsx'
import { NeuralVoicesHint } from '../components/NeuralVoicesHint.tsx'
import { PreviewButton, VoiceSelect } from '../components/VoiceSelect.tsx'
import { useI18n } from '../i18n.ts'
import { countChars, estimateCostMicros, providerOf } from '../lib/cost.ts'
import { formatDuration, formatMoney, formatNumber } from '../lib/format.ts'
import { STATUS_LABELS } from '../lib/labels.ts'
import { useAudioJob } from '../lib/useAudioJob.ts'
import { useVoiceCatalog } from '../lib/useVoiceCatalog.ts'
import { defaultVoice, languagesOf } from '../lib/voices.ts'
import { useSession } from '../session.ts'

const VOICE_KEY = 'aimake.voice'

function storedVoice(): string {
  try {
    return window.localStorage.getItem(VOICE_KEY) ?? ''
  } catch {
    return ''
  }
}

export default function StudioPage() {
  const { t, language } = useI18n()
  const { refresh: refreshSession } = useSession()
  const catalog = useVoiceCatalog()
  const [text, setText] = useState('')
  const [title, setTitle] = useState('')
  const [chosenVoice, setChosenVoice] = useState(storedVoice)
  const [languageFilter, setLanguageFilter] = useState('')
  const [speed, setSpeed] = useState(1)
  const [format, setFormat] = useState<AudioFormat>('mp3')
  const [submitting, setSubmitting] = useState(false)
  const [submitError, setSubmitError] = useState<unknown>(null)
  const [started, setStarted] = useState<Audio | null>(null)
  const job = useAudioJob(started)

  const { voices, providers } = catalog
  const voice = voices.some((v) => v.id === chosenVoice) ? chosenVoice : defaultVoice(voices, providers, language)
  const chars = countChars(text)
  const cost = voice === '' ? null : estimateCostMicros(providerOf(voice), chars)

  const pickVoice = (next: string) => {
    setChosenVoice(next)
    try {
      window.localStorage.setItem(VOICE_KEY, next)
    } catch {
      // Not remembered; still used now.
    }
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setSubmitting(true)
    setSubmitError(null)
    try {
      const audio = await createAudio({
        text,
        voice,
        format,
        speed,
        ...(title.trim() === '' ? {} : { title: title.trim() }),
      })
      setStarted(audio)
    } catch (error) {
      setSubmitError(error)
    } finally {
      setSubmitting(false)
    }
  }

  const retry = async () => {
    if (job === null) return
    setSubmitError(null)
    try {
      setStarted(await retryAudio(job.id))
    } catch (error) {
      setSubmitError(error)
    }
  }

  const busy = job !== null && (job.status === 'queued' || job.status === 'running')
  // The quota shown elsewhere counts this audio once it is done.
  const finished = job?.status === 'succeeded' ? job.id : null
  useEffect(() => {
    if (finished !== null) void refreshSession()
  }, [finished, refreshSession])

  return (
    <div className="stack">
      <h1>{t('studio.title')}</h1>
      <NeuralVoicesHint providers={providers} />
      <form className="card form" onSubmit={(event) => void submit(event)}>
        <Field label={t('studio.text')}>
          <textarea
            value={text}
            onChange={(event) => setText(event.target.value)}
            rows={8}
            required
            aria-describedby="studio-count"
          />
        </Field>
        <p id="studio-count" className="muted count" aria-live="polite">
          {t('studio.chars', { count: formatNumber(chars, language) })}
          {' · '}
          {cost === null ? t('studio.costUnknown') : t('studio.cost', { cost: formatMoney(cost, language) })}
        </p>

        {catalog.state.kind === 'failed' && <ErrorMessage error={catalog.state.error} title={t('studio.voicesFailed')} />}
        <div className="grid-2">
          <Field label={t('studio.languageFilter')}>
            <select value={languageFilter} onChange={(event) => setLanguageFilter(event.target.value)}>
              <option value="">{t('studio.allLanguages')}</option>
              {languagesOf(voices).map((code) => (
                <option key={code} value={code}>
                  {code}
                </option>
              ))}
            </select>
          </Field>
          <div className="with-action">
            <VoiceSelect
              id="studio-voice"
              label={t('studio.voice')}
              value={voice}
              onChange={pickVoice}
              voices={voices}
              providers={providers}
              languageFilter={languageFilter}
            />
            <PreviewButton voice={voice} />
          </div>
          <Field label={t('studio.speed')} hint={<output>{speed.toFixed(1)}×</output>}>
            <input
              type="range"
              min={0.5}
              max={2}
              step={0.1}
              value={speed}
              onChange={(event) => setSpeed(Number(event.target.value))}
            />
          </Field>
          <Field label={t('studio.format')}>
            <select value={format} onChange={(event) => setFormat(event.target.value as AudioFormat)}>
              <option value="mp3">MP3</option>
              <option value="wav">WAV</option>
            </select>
          </Field>
          <Field label={t('studio.titleField')} className="span-2">
            <input value={title} onChange={(event) => setTitle(event.target.value)} placeholder={t('studio.titlePlaceholder')} />
          </Field>
        </div>
        {submitError !== null && <ErrorMessage error={submitError} />}
        <div className="actions">
          <button type="submit" className="button" disabled={submitting || busy || voice === '' || text.trim() === ''}>
            {submitting ? t('common.working') : t('studio.generate')}
          </button>
        </div>
      </form>

      <section className="card result" aria-labelledby="studio-result" aria-live="polite">
        <h2 id="studio-result">{t('studio.result')}</h2>
        {job === null ? (
          <p className="muted">{t('studio.nothingYet')}</p>
        ) : (
          <JobView job={job} onRetry={() => void retry()} />
        )}
      </section>
    </div>
  )
}

function JobView({ job, onRetry }: { job: Audio; onRetry: () => void }) {
  const { t } = useI18n()
  const [streamFailed, setStreamFailed] = useState(false)
  if (job.status === 'succeeded') {
    return (
      <div className="stack-sm">
        <p>
          <strong>{job.title}</strong> · {formatDuration(job.duration_ms)}
        </p>
        <AudioPlayer audio={job} src={audioFileUrl(job)} />
        <div className="actions">
          <a className="button button-quiet" href={audioFileUrl(job, true)} download>
            {t('action.download')}
          </a>
          <Link to="/library" className="button button-quiet">
            {t('studio.openLibrary')}
          </Link>
        </div>
      </div>
    )
  }
  if (job.status === 'failed' || job.status === 'canceled') {
    return (
      <div className="stack-sm">
        <div role="alert" className="error">
          <p className="error-title">{t(job.status === 'failed' ? 'studio.failed' : 'audio.status.canceled')}</p>
          {job.error !== null && <p>{job.error.message}</p>}
        </div>
        {job.status === 'failed' && (
          <button type="button" className="button" onClick={onRetry}>
            {t('action.retry')}
          </button>
        )}
      </div>
    )
  }
  return (
    <div className="stack-sm">
      <p>{t(STATUS_LABELS[job.status])}</p>
      <ProgressBar value={job.progress} label={t('studio.progress')} />
      {job.status === 'running' && job.format === 'mp3' && !streamFailed && (
        <div className="player">
          <div className="waveform-box">
            <div className="waveform-placeholder" aria-hidden="true" />
          </div>
          <audio
            className="audio"
            controls
            preload="none"
            src={audioStreamUrl(job.id)}
            aria-label={t('studio.listenNow')}
            // Servers without progressive streaming answer 404: the player waits for the file.
            onError={() => setStreamFailed(true)}
          />
          <p className="muted">{t('studio.listenNow')}</p>
        </div>
      )}
    </div>
  )
}
