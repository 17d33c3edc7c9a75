// Voices grouped by provider, with a language filter and a preview button.

import { useEffect, useRef, useState } from 'react'
import { Field } from './Field.tsx'
import { previewVoice } from '../api.ts'
import type { Provider, Voice } from '../api.ts'
import { errorText } from '../errors.ts'
import { useI18n } from '../i18n.ts'
import { groupVoices, providerName } from '../lib/voices.ts'

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
  return (
    <Field label={label}>
      <select id={id} value={value} onChange={(event) => onChange(event.target.value)} required>
        {value === '' && <option value="">{t('voice.choose')}</option>}
        {groups.map((group) => (
          <optgroup
            key={group.provider}
            label={group.available ? providerName(group.provider) : `${providerName(group.provider)} (${t('voice.unavailable')})`}
          >
            {group.voices.map((voice) => (
              <option key={voice.id} value={voice.id} disabled={!group.available}>
                {voice.name} · {voice.language}
              </option>
            ))}
          </optgroup>
        ))}
      </select>
    </Field>
  )
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
