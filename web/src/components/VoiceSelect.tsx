// Voices grouped by provider (neural ones first), each with its quality and licence, with a
// language filter and a preview button.

import { useEffect, useRef, useState } from 'react'
import { Field } from './Field.tsx'
import { previewVoice } from '../api.ts'
import type { Provider, Voice } from '../api.ts'
import { errorText } from '../errors.ts'
import { useI18n } from '../i18n.ts'
import type { I18n, MessageKey } from '../i18n.ts'
import { QUALITY_LABELS } from '../lib/labels.ts'
import { downloadPercent, groupVoices, providerName } from '../lib/voices.ts'
import type { VoiceGroup } from '../lib/voices.ts'

export function VoiceSelect({
  id,
  label,
  value,
  onChange,
  voices,
  providers,
  languageFilter = '',
}: {
  id: string
  label: string
  value: string
  onChange: (voice: string) => void
  voices: readonly Voice[]
  providers: readonly Provider[]
  languageFilter?: string
}) {
  const { t } = useI18n()
  const shown = voices.filter((v) => languageFilter === '' || v.language === languageFilter || v.id === value)
  const groups = groupVoices(shown, providers)
  const selected = voices.find((v) => v.id === value)

  const groupLabel = (group: VoiceGroup) => {
    const name = providerName(group.provider)
    if (group.available) return name
    if (group.progress !== null) {
      const percent = downloadPercent(group.progress)
      return `${name} (${percent === null ? t('voice.downloadStarting') : t('voice.downloading', { percent })})`
    }
    return `${name} (${t('voice.unavailable')})`
  }

  return (
    <Field
      label={label}
      hint={
        selected !== undefined && !selected.commercial_use
          ? t('voice.nonCommercialHint', { license: selected.license ?? '–' })
          : undefined
      }
    >
      <select id={id} value={value} onChange={(event) => onChange(event.target.value)} required>
        {value === '' && <option value="">{t('voice.choose')}</option>}
        {groups.map((group) => (
          <optgroup key={group.provider} label={groupLabel(group)}>
            {group.voices.map((voice) => (
              <option key={voice.id} value={voice.id} disabled={!group.available}>
                {voiceLabel(voice, t)}
              </option>
            ))}
          </optgroup>
        ))}
      </select>
    </Field>
  )
}

/** `Heart · en-US · High quality`, with the non-commercial mark when the licence needs it. */
function voiceLabel(voice: Voice, t: I18n['t']): string {
  const parts = [voice.name, voice.language]
  const quality = QUALITY_LABELS[voice.quality] as MessageKey | undefined
  if (quality !== undefined) parts.push(t(quality))
  if (!voice.commercial_use) parts.push(t('voice.nonCommercial'))
  return parts.join(' · ')
}

/** Plays a short sample of `voice`; the sample is fetched once per voice and reused. */
export function PreviewButton({ voice }: { voice: string }) {
  const { t } = useI18n()
  const [state, setState] = useState<{ kind: 'idle' } | { kind: 'loading' } | { kind: 'failed'; message: string }>({
    kind: 'idle',
  })
  const cache = useRef(new Map<string, string>())
  const player = useRef<HTMLAudioElement | null>(null)

  useEffect(() => {
    const urls = cache.current
    return () => {
      player.current?.pause()
      for (const url of urls.values()) URL.revokeObjectURL(url)
    }
  }, [])

  const play = async () => {
    setState({ kind: 'loading' })
    try {
      let url = cache.current.get(voice)
      if (url === undefined) {
        url = URL.createObjectURL(await previewVoice(voice))
        cache.current.set(voice, url)
      }
      player.current?.pause()
      player.current = new Audio(url)
      await player.current.play()
      setState({ kind: 'idle' })
    } catch (error) {
      setState({ kind: 'failed', message: errorText(error, t) })
    }
  }

  return (
    <span className="copy">
      <button
        type="button"
        className="button button-quiet"
        onClick={() => void play()}
        disabled={voice === '' || state.kind === 'loading'}
      >
        {state.kind === 'loading' ? t('common.loading') : t('voice.preview')}
      </button>
      <span role="status" className="copy-status">
        {state.kind === 'failed' && state.message}
      </span>
    </span>
  )
}
