// Server objects as docs/api.md describes them, for tests to start from.

import type { Audio, Provider, Voice } from '../api.ts'

export function audio(overrides: Partial<Audio> = {}): Audio {
  const id = overrides.id ?? '01J00000000000000000AUDIO1'
  return {
    id,
    title: 'Hello world',
    kind: 'tts',
    status: 'succeeded',
    progress: 1,
    voice: 'local:en-us',
    format: 'mp3',
    speed: 1,
    chars: 11,
    duration_ms: 1500,
    size_bytes: 24000,
    error: null,
    file_url: `/api/audios/${id}/file`,
    peaks_url: `/api/audios/${id}/peaks`,
    created_at: '2026-03-01T10:00:00Z',
    updated_at: '2026-03-01T10:00:02Z',
    ...overrides,
  }
}

export const PROVIDERS: Provider[] = [
  { id: 'local', kind: 'tts', available: true, detail: 'espeak-ng 1.51' },
  { id: 'openai', kind: 'tts', available: true, detail: 'tts-1' },
  { id: 'elevenlabs', kind: 'tts', available: false, detail: 'no API key' },
  { id: 'tencent', kind: 'tts', available: true, detail: 'ap-guangzhou' },
]

export const VOICES: Voice[] = [
  { id: 'local:en-us', provider: 'local', name: 'English (US)', language: 'en-US', gender: null },
  { id: 'local:cmn', provider: 'local', name: 'Mandarin', language: 'zh-CN', gender: null },
  { id: 'openai:alloy', provider: 'openai', name: 'Alloy', language: 'en-US', gender: null },
  { id: 'elevenlabs:rachel', provider: 'elevenlabs', name: 'Rachel', language: 'en-US', gender: 'female' },
  { id: 'tencent:101001', provider: 'tencent', name: '智瑜', language: 'zh-CN', gender: 'female' },
]
