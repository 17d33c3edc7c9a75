import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { TimeSpan } from '../api.ts'
import { spaceBetween, speakerNumber, spanAt, wordsBySegment } from './transcript.ts'

/** Words in time order that never overlap: each starts at or after the previous one's end. */
const timedWords = fc
  .array(fc.tuple(fc.double({ min: 0, max: 3, noNaN: true }), fc.double({ min: 0, max: 2, noNaN: true })), {
    maxLength: 60,
  })
  .map((steps) => {
    const spans: TimeSpan[] = []
    let at = 0
    for (const [gap, length] of steps) {
      const start = at + gap
      spans.push({ start, end: start + length })
      at = start + length
    }
    return spans
  })

const WORDS: TimeSpan[] = [
  { start: 0, end: 0.5 },
  { start: 0.5, end: 1 },
  { start: 1.2, end: 2 },
  { start: 3, end: 3.4 },
]

describe('the word at a time', () => {
  it('finds the word whose start is at or before the time and whose end is after it', () => {
    expect(spanAt(WORDS, 0)).toBe(0)
    expect(spanAt(WORDS, 0.49)).toBe(0)
    expect(spanAt(WORDS, 0.5)).toBe(1)
    expect(spanAt(WORDS, 1.5)).toBe(2)
    expect(spanAt(WORDS, 3.39)).toBe(3)
  })

  it('finds no word in a gap, before the first word or after the last', () => {
    expect(spanAt(WORDS, 1.1)).toBe(-1)
    expect(spanAt(WORDS, 2.5)).toBe(-1)
    expect(spanAt(WORDS, -1)).toBe(-1)
    expect(spanAt(WORDS, 3.4)).toBe(-1)
    expect(spanAt(WORDS, 100)).toBe(-1)
    expect(spanAt([], 1)).toBe(-1)
    expect(spanAt(WORDS, Number.NaN)).toBe(-1)
  })

  it('returns a word that contains the time, or none exactly when no word does', () => {
    fc.assert(
      fc.property(timedWords, fc.double({ min: -1, max: 400, noNaN: true }), (words, t) => {
        const found = spanAt(words, t)
        const containing = words.findIndex((w) => w.start <= t && t < w.end)
        if (found === -1) {
          expect(containing).toBe(-1)
        } else {
          const word = words[found] as TimeSpan
          expect(word.start).toBeLessThanOrEqual(t)
          expect(t).toBeLessThan(word.end)
        }
      }),
    )
  })

  it('finds every word at its own start', () => {
    fc.assert(
      fc.property(timedWords, (words) => {
        words.forEach((word, index) => {
          if (word.end > word.start) expect(spanAt(words, word.start)).toBe(index)
        })
      }),
    )
  })
})

describe('words by segment', () => {
  it('puts each word under the segment it starts in', () => {
    const segments = [
      { start: 0, end: 1 },
      { start: 1.2, end: 2 },
      { start: 3, end: 4 },
    ]
    expect(wordsBySegment(segments, WORDS)).toEqual([
      { from: 0, to: 2 },
      { from: 2, to: 3 },
      { from: 3, to: 4 },
    ])
  })

  it('gives a segment without words an empty range and words before the first segment to it', () => {
    const segments = [
      { start: 0.2, end: 1 },
      { start: 1.1, end: 1.15 },
      { start: 2.5, end: 4 },
    ]
    expect(wordsBySegment(segments, WORDS)).toEqual([
      { from: 0, to: 2 },
      { from: 2, to: 3 },
      { from: 3, to: 4 },
    ])
    expect(wordsBySegment([{ start: 0, end: 1 }, { start: 5, end: 6 }], WORDS)).toEqual([
      { from: 0, to: 4 },
      { from: 4, to: 4 },
    ])
    expect(wordsBySegment([], WORDS)).toEqual([])
  })

  it('places every word in exactly one segment, in order', () => {
    fc.assert(
      fc.property(timedWords, timedWords, (segments, words) => {
        const ranges = wordsBySegment(segments, words)
        expect(ranges).toHaveLength(segments.length)
        if (segments.length === 0) return
        let next = 0
        for (const range of ranges) {
          expect(range.from).toBe(next)
          expect(range.to).toBeGreaterThanOrEqual(range.from)
          next = range.to
        }
        expect(next).toBe(words.length)
      }),
    )
  })
})

describe('spacing between words', () => {
  it('writes words as the server joins them', () => {
    expect(spaceBetween('Hello', 'there')).toBe(true)
    expect(spaceBetween('Hello', ',')).toBe(false)
    expect(spaceBetween('there', '.')).toBe(false)
    expect(spaceBetween('你', '好')).toBe(false)
    expect(spaceBetween('好', '。')).toBe(false)
    expect(spaceBetween('hello', '世界')).toBe(true)
    expect(spaceBetween(' ', 'x')).toBe(false)
  })
})

describe('speaker labels', () => {
  it('numbers speaker_N from one and leaves other labels alone', () => {
    expect(speakerNumber('speaker_0')).toBe(1)
    expect(speakerNumber('speaker_12')).toBe(13)
    expect(speakerNumber('Alice')).toBeNull()
  })
})
