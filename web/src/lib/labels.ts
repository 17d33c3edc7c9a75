// Dictionary keys for values the server sends as codes.

import type { AsrProvider, AudioKind, AudioStatus, TranscriptStatus, VoiceQuality } from '../api.ts'
import type { MessageKey } from '../i18n.ts'

export const STATUS_LABELS: Record<AudioStatus, MessageKey> = {
  queued: 'audio.status.queued',
  running: 'audio.status.running',
  succeeded: 'audio.status.succeeded',
  failed: 'audio.status.failed',
  canceled: 'audio.status.canceled',
}

export const KIND_LABELS: Record<AudioKind, MessageKey> = {
  tts: 'audio.kind.tts',
  podcast: 'audio.kind.podcast',
  upload: 'audio.kind.upload',
}

export const QUALITY_LABELS: Record<VoiceQuality, MessageKey> = {
  high: 'voice.quality.high',
  good: 'voice.quality.good',
  basic: 'voice.quality.basic',
}

export const ASR_PROVIDER_LABELS: Record<AsrProvider, MessageKey> = {
  openai: 'transcripts.provider.openai',
  elevenlabs: 'transcripts.provider.elevenlabs',
  tencent: 'transcripts.provider.tencent',
  whisper: 'transcripts.provider.whisper',
}

export const TRANSCRIPT_STATUS_LABELS: Record<TranscriptStatus, MessageKey> = {
  queued: 'audio.status.queued',
  running: 'transcripts.status.running',
  succeeded: 'audio.status.succeeded',
  failed: 'audio.status.failed',
}
