// Voice lists: languages, grouping by provider, a sensible default.

import type { Provider, Voice } from '../api.ts'

/** Languages present in `voices`, sorted by their display name. */
export function languagesOf(voices: readonly Voice[]): string[] {
  return [...new Set(voices.map((v) => v.language))].sort((a, b) => a.localeCompare(b))
}

/** Groups voices by provider in the providers' order; unavailable providers come last. */
export function groupVoices(
  voices: readonly Voice[],
  providers: readonly Provider[],
): { provider: string; available: boolean; detail: string; voices: Voice[] }[] {
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
        voices: list.sort((a, b) => a.name.localeCompare(b.name)),
      }
    })
    .sort(
      (a, b) =>
        Number(b.available) - Number(a.available) ||
        (order.get(a.provider) ?? 99) - (order.get(b.provider) ?? 99),
    )
}

/** The variant of a bare language people most likely mean. */
const USUAL_REGION: Record<string, string> = { en: 'en-us', zh: 'zh-cn' }

/**
 * The first voice of an available provider in the UI's language: the exact tag first
 * (`zh-CN`), then the usual variant of the language (`en` → `en-US`), then any variant.
 */
export function defaultVoice(voices: readonly Voice[], providers: readonly Provider[], language: string): string {
  const usable = groupVoices(voices, providers)
    .filter((g) => g.available)
    .flatMap((g) => g.voices)
  const tag = language.toLowerCase()
  const prefix = tag.slice(0, 2)
  const usual = USUAL_REGION[prefix]
  const pick =
    usable.find((v) => v.language.toLowerCase() === tag) ??
    usable.find((v) => v.language.toLowerCase() === usual) ??
    usable.find((v) => v.language.toLowerCase().startsWith(prefix)) ??
    usable[0]
  return pick?.id ?? ''
}

/**
 * A voice for the `index`-th speaker: different speakers get different voices of the default
 * voice's provider and language when there are several, so a dialogue is easy to follow.
 */
export function speakerVoice(
  voices: readonly Voice[],
  providers: readonly Provider[],
  language: string,
  index: number,
): string {
  const first = voices.find((v) => v.id === defaultVoice(voices, providers, language))
  if (first === undefined) return ''
  const prefix = first.language.slice(0, 2).toLowerCase()
  const alike = groupVoices(voices, providers)
    .find((g) => g.provider === first.provider)
    ?.voices.filter((v) => v.language.toLowerCase().startsWith(prefix)) ?? [first]
  const ordered = [first, ...alike.filter((v) => v.id !== first.id)]
  return ordered[index % ordered.length]?.id ?? first.id
}

const PROVIDER_NAMES: Record<string, string> = {
  local: 'Local',
  openai: 'OpenAI',
  elevenlabs: 'ElevenLabs',
  tencent: 'Tencent Cloud',
}

export function providerName(id: string): string {
  return PROVIDER_NAMES[id] ?? id
}
