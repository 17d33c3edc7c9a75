// Finding where a playing recording is in its transcript, and grouping its words under the
// segments they belong to. Pure, so the transcript view stays a thin layer over them.

import type { TimeSpan } from '../api.ts'

/**
 * The index of the span that contains `t` (`start <= t < end`), or -1 when `t` falls in a gap.
 * `spans` are in time order and do not overlap, as a transcript's words are; a binary search
 * keeps this cheap on every tick of a long recording's player.
 */
export function spanAt(spans: readonly TimeSpan[], t: number): number {
  if (!Number.isFinite(t)) return -1
  // The last span that starts at or before `t`.
  let low = 0
  let high = spans.length - 1
  let found = -1
  while (low <= high) {
    const middle = (low + high) >>> 1
    if ((spans[middle] as TimeSpan).start <= t) {
      found = middle
      low = middle + 1
    } else {
      high = middle - 1
    }
  }
  return found !== -1 && t < (spans[found] as TimeSpan).end ? found : -1
}

/** Word indexes `[from, to)` per segment. */
export interface WordRange {
  from: number
  to: number
}

/**
 * Splits `words` (in time order) among `segments` (in time order): each word goes to the last
 * segment that starts at or before it, words before the first segment to the first. Every word
 * lands in exactly one segment, so none is lost when the provider's times disagree slightly.
 */
export function wordsBySegment(segments: readonly TimeSpan[], words: readonly TimeSpan[]): WordRange[] {
  const ranges: WordRange[] = segments.map(() => ({ from: 0, to: 0 }))
  if (segments.length === 0) return ranges
  let segment = 0
  let from = 0
  for (let i = 0; i < words.length; i++) {
    const start = (words[i] as TimeSpan).start
    while (segment + 1 < segments.length && (segments[segment + 1] as TimeSpan).start <= start) {
      ranges[segment] = { from, to: i }
      segment += 1
      from = i
    }
  }
  ranges[segment] = { from, to: words.length }
  for (let s = segment + 1; s < segments.length; s++) ranges[s] = { from: words.length, to: words.length }
  return ranges
}

/** `speaker_0` → 1, for "Speaker 1"; null for a label of another shape, shown as it is. */
export function speakerNumber(label: string): number | null {
  const match = /^speaker_(\d+)$/.exec(label)
  return match === null ? null : Number(match[1]) + 1
}

/** CJK, kana, Hangul and full-width forms: written without spaces between them. */
const WIDE =
  /[\u1100-\u11FF\u2E80-\u2FDF\u3000-\u303F\u3040-\u30FF\u3100-\u31FF\u3200-\u4DBF\u4E00-\u9FFF\uA960-\uA97F\uAC00-\uD7FF\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6]|[\u{20000}-\u{3FFFF}]/u
/** Punctuation that closes, written right after the word before it. */
const CLOSING = /^[,.!?;:)%]/

/**
 * Whether a space goes between two words, as the server joins a transcript's text: none
 * between two wide characters, before closing punctuation, or before wide punctuation.
 */
export function spaceBetween(before: string, after: string): boolean {
  const last = [...before.trim()].at(-1)
  const first = [...after.trim()][0]
  if (last === undefined || first === undefined) return false
  const wideFirst = WIDE.test(first)
  if (WIDE.test(last) && wideFirst) return false
  if (CLOSING.test(first)) return false
  return !(wideFirst && !/[\p{L}\p{N}]/u.test(first))
}

/** How often a transcript being heard is asked for again. */
export const TRANSCRIPT_POLL_MS = 1500
