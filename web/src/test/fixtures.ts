// Server objects as docs/api.md describes them, for tests to start from.

import type { Audio, Provider, SelftestReport, Transcript, Transcription, Voice } from '../api.ts'

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
    transcript: null,
    created_at: '2026-03-01T10:00:00Z',
    updated_at: '2026-03-01T10:00:02Z',
    ...overrides,
  }
}

export const PROVIDERS: Provider[] = [
  { id: 'kokoro', kind: 'tts', available: true, detail: 'Kokoro v1.0 (int8)', progress: null },
  { id: 'piper', kind: 'tts', available: true, detail: '2 voices installed', progress: null },
  { id: 'local', kind: 'tts', available: true, detail: 'espeak-ng 1.51' },
  { id: 'openai', kind: 'tts', available: true, detail: 'tts-1' },
  { id: 'elevenlabs', kind: 'tts', available: false, detail: 'no API key' },
  { id: 'tencent', kind: 'tts', available: true, detail: 'ap-guangzhou' },
]

/** A voice as `GET /api/voices` lists it; the provider comes from the id. */
export function voice(overrides: Partial<Voice> & Pick<Voice, 'id'>): Voice {
  return {
    provider: overrides.id.slice(0, overrides.id.indexOf(':')),
    name: overrides.id,
    language: 'en-US',
    gender: null,
    quality: 'high',
    license: null,
    commercial_use: true,
    default: false,
    ...overrides,
  }
}

const kokoro = { quality: 'high', license: 'Apache-2.0' } as const
const espeak = { quality: 'basic', license: null } as const

export const VOICES: Voice[] = [
  voice({ id: 'local:en-us', name: 'English (US)', ...espeak }),
  voice({ id: 'local:cmn', name: 'Mandarin', language: 'zh-CN', ...espeak }),
  voice({ id: 'openai:alloy', name: 'Alloy' }),
  voice({ id: 'elevenlabs:rachel', name: 'Rachel', gender: 'female' }),
  voice({ id: 'tencent:101001', name: '智瑜', language: 'zh-CN', gender: 'female' }),
  voice({ id: 'kokoro:af_heart', name: 'Heart', gender: 'female', ...kokoro, default: true }),
  voice({ id: 'kokoro:am_michael', name: 'Michael', gender: 'male', ...kokoro }),
  voice({ id: 'kokoro:bf_emma', name: 'Emma', language: 'en-GB', gender: 'female', ...kokoro }),
  voice({ id: 'kokoro:zf_xiaoxiao', name: 'Xiaoxiao', language: 'zh-CN', gender: 'female', ...kokoro, default: true }),
  voice({
    id: 'piper:en_US-harbor-medium',
    name: 'Harbor',
    gender: 'male',
    quality: 'good',
    license: 'CC-BY-NC-4.0',
    commercial_use: false,
  }),
  voice({ id: 'piper:en_GB-fen-high', name: 'Fen', language: 'en-GB', quality: 'high', license: 'CC0-1.0' }),
]

/** The catalog of a server whose only voices are espeak-ng's, before any neural model is there. */
export const ESPEAK_VOICES: Voice[] = VOICES.filter((v) => v.provider === 'local').map((v) => ({
  ...v,
  default: true,
}))

/** What the fixture transcript heard: two speakers, two segments, four words. */
export const HEARD: Transcript = {
  language: 'en',
  duration: 4,
  text: 'Hello there. Welcome back.',
  segments: [
    { start: 0, end: 1.5, text: 'Hello there.', speaker: 'speaker_0' },
    { start: 2, end: 4, text: 'Welcome back.', speaker: 'speaker_1' },
  ],
  words: [
    { start: 0, end: 0.6, word: 'Hello', speaker: 'speaker_0' },
    { start: 0.7, end: 1.5, word: 'there.', speaker: 'speaker_0' },
    { start: 2, end: 2.8, word: 'Welcome', speaker: 'speaker_1' },
    { start: 3, end: 4, word: 'back.', speaker: 'speaker_1' },
  ],
  model: 'whisper-1',
}

/**
 * A transcript as `GET /api/transcriptions/{id}` answers once it succeeded; `transcript: null`
 * leaves the text out, as the list and unfinished transcripts do.
 */
export function transcription(
  overrides: Partial<Omit<Transcription, 'transcript'>> & { transcript?: Transcript | null } = {},
): Transcription {
  const { transcript = HEARD, ...rest } = overrides
  const id = rest.id ?? '01J0000000000000000TRANS1'
  const base: Transcription = {
    id,
    title: 'interview.wav',
    source: 'upload',
    audio_id: null,
    status: 'succeeded',
    progress: 1,
    provider: 'openai',
    model: 'whisper-1',
    language: 'en',
    speakers: true,
    duration_ms: 4000,
    size_bytes: 128000,
    error: null,
    recording_url: `/api/transcriptions/${id}/recording`,
    downloads: {
      json: `/api/transcriptions/${id}.json`,
      srt: `/api/transcriptions/${id}.srt`,
      vtt: `/api/transcriptions/${id}.vtt`,
      txt: `/api/transcriptions/${id}.txt`,
    },
    created_at: '2026-03-02T09:00:00Z',
    updated_at: '2026-03-02T09:00:30Z',
    ...rest,
  }
  return transcript === null ? base : { ...base, transcript }
}

/** `POST /api/admin/selftest` on a server with espeak-ng, Kokoro and Piper, where Piper failed. */
export const SELFTEST: SelftestReport = {
  sentence: 'Please call me back when you have a moment.',
  model: 'whisper:base',
  voices: [
    {
      voice: 'local:en-us',
      heard: 'Please call me back when you have a minute.',
      word_error_rate: 1 / 9,
      audio_ms: 2840,
      elapsed_ms: 3210,
      error: null,
    },
    {
      voice: 'kokoro:af_heart',
      heard: 'Please, call me back when you have a moment.',
      word_error_rate: 0,
      audio_ms: 2500,
      elapsed_ms: 4750,
      error: null,
    },
    {
      voice: 'piper:en_US-lessac-medium',
      heard: null,
      word_error_rate: null,
      audio_ms: null,
      elapsed_ms: 120,
      error: 'speaking failed: the voice model is missing',
    },
  ],
}
