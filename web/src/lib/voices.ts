// Voice lists: languages, grouping by provider, a sensible default.

import type { DownloadProgress, Provider, ProviderId, Voice, VoiceQuality } from '../api.ts'

/** Providers whose neural models run on the server itself; the picker lists them first. */
export const NEURAL_PROVIDERS: readonly ProviderId[] = ['kokoro', 'piper']

export function isNeural(provider: ProviderId): boolean {
  return NEURAL_PROVIDERS.includes(provider)
}

const QUALITY_RANK: Record<VoiceQuality, number> = { high: 0, good: 1, basic: 2 }

/** Languages present in `voices`, sorted by their display name. */
export function languagesOf(voices: readonly Voice[]): string[] {
  return [...new Set(voices.map((v) => v.language))].sort((a, b) => a.localeCompare(b))
}

export interface VoiceGroup {
  provider: string
  available: boolean
  detail: string
  progress: DownloadProgress | null
  voices: Voice[]
}

/**
 * Groups voices by provider: available providers before unavailable ones, neural providers
 * first, then the providers' order; within a provider the better voices come first.
 */
export function groupVoices(voices: readonly Voice[], providers: readonly Provider[]): VoiceGroup[] {
  const order = new Map(providers.map((p, i) => [p.id, i]))
  const groups = new Map<string, Voice[]>()
  for (const voice of voices) {
    const list = groups.get(voice.provider) ?? []
    list.push(voice)
    groups.set(voice.provider, list)
  }
  return [...groups.entries()]
    .map(([provider, list]) => {
      const info = providers.find((p) => p.id === provider)
      return {
        provider,
        available: info?.available ?? true,
        detail: info?.detail ?? '',
        progress: info?.progress ?? null,
        voices: list.sort(
          (a, b) =>
            (QUALITY_RANK[a.quality] ?? 3) - (QUALITY_RANK[b.quality] ?? 3) || a.name.localeCompare(b.name),
        ),
      }
    })
    .sort(
      (a, b) =>
        Number(b.available) - Number(a.available) ||
        Number(isNeural(b.provider)) - Number(isNeural(a.provider)) ||
        (order.get(a.provider) ?? 99) - (order.get(b.provider) ?? 99),
    )
}

/** How far a download is, 0-100, or null when its size is not known yet. */
export function downloadPercent(progress: DownloadProgress): number | null {
  if (!(progress.total_bytes > 0)) return null
  return Math.min(100, Math.floor((progress.done_bytes / progress.total_bytes) * 100))
}

/** The first neural provider the server is still downloading a model for, if any. */
export function neuralDownload(providers: readonly Provider[]): Provider | null {
  return providers.find((p) => isNeural(p.id) && p.progress != null) ?? null
}

/** The variant of a bare language people most likely mean. */
const USUAL_REGION: Record<string, string> = { en: 'en-us', zh: 'zh-cn' }

/** The primary language subtag, lower case: `en-US` → `en`. */
function baseLanguage(tag: string): string {
  return tag.toLowerCase().split(/[-_]/)[0] ?? ''
}

/**
 * The voice to start with for the UI's language: the voice the server marks as that
 * language's default, if its provider is available; else the first voice of an available
 * provider in that language, the exact tag first (`zh-CN`), then the usual variant of the
 * language (`en` → `en-US`), then any variant.
 */
export function defaultVoice(voices: readonly Voice[], providers: readonly Provider[], language: string): string {
  const usable = groupVoices(voices, providers)
    .filter((g) => g.available)
    .flatMap((g) => g.voices)
  const tag = language.toLowerCase()
  const prefix = baseLanguage(tag)
  const usual = USUAL_REGION[prefix]
  const pick =
    usable.find((v) => v.default && baseLanguage(v.language) === prefix) ??
    usable.find((v) => v.language.toLowerCase() === tag) ??
    usable.find((v) => v.language.toLowerCase() === usual) ??
    usable.find((v) => baseLanguage(v.language) === prefix) ??
    usable[0]
  return pick?.id ?? ''
}

/**
 * A voice for the `index`-th speaker: different speakers get different voices of the default
 * voice's provider and language when there are several (the same regional variant first),
 * so a dialogue is easy to follow.
 */
export function speakerVoice(
  voices: readonly Voice[],
  providers: readonly Provider[],
  language: string,
  index: number,
): string {
  const first = voices.find((v) => v.id === defaultVoice(voices, providers, language))
  if (first === undefined) return ''
  const tag = first.language.toLowerCase()
  const prefix = baseLanguage(tag)
  const same = groupVoices(voices, providers)
    .find((g) => g.provider === first.provider)
    ?.voices.filter((v) => v.id !== first.id && baseLanguage(v.language) === prefix) ?? []
  const ordered = [
    first,
    ...same.filter((v) => v.language.toLowerCase() === tag),
    ...same.filter((v) => v.language.toLowerCase() !== tag),
  ]
  return ordered[index % ordered.length]?.id ?? first.id
}

const PROVIDER_NAMES: Record<string, string> = {
  kokoro: 'Kokoro',
  piper: 'Piper',
  local: 'Local',
  openai: 'OpenAI',
  elevenlabs: 'ElevenLabs',
  tencent: 'Tencent Cloud',
  whisper: 'Whisper',
}

export function providerName(id: string): string {
  return PROVIDER_NAMES[id] ?? id
}
