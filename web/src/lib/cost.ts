// What a text would cost with a provider, before generating it. Mirrors the server's default
// price table; the usage page shows what was actually charged.

import type { ProviderId } from '../api.ts'

/** US dollars per million characters; tencent is billed in another currency and plan. */
export const PRICE_PER_MILLION_CHARS: Readonly<Record<string, number | null>> = {
  kokoro: 0,
  piper: 0,
  local: 0,
  openai: 15,
  elevenlabs: 300,
  tencent: null,
}

/** Characters as the providers count them: code points, so an emoji or CJK ideograph is one. */
export function countChars(text: string): number {
  // A surrogate pair is two UTF-16 units but one character.
  return text.length - (text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0)
}

/** Estimated cost in micro-dollars, or null when the provider's price is not known. */
export function estimateCostMicros(provider: ProviderId, chars: number): number | null {
  const price = PRICE_PER_MILLION_CHARS[provider]
  if (price === undefined || price === null) return null
  // dollars per 1M chars == micro-dollars per char
  return Math.round(price * chars)
}

/** The provider part of a voice id `provider:voice`. */
export function providerOf(voiceId: string): ProviderId {
  const colon = voiceId.indexOf(':')
  return colon === -1 ? voiceId : voiceId.slice(0, colon)
}
