import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ScriptLine } from '../api.ts'
import { MAX_NAME_CHARS, MAX_NAME_WORDS, formatDialogue, parseDialogue } from './dialogue.ts'

describe('parseDialogue', () => {
  it('reads speaker lines with ASCII and full-width colons', () => {
    const parsed = parseDialogue('Alice: Hello there.\n小明：你好！')

    expect(parsed.lines).toEqual([
      { speaker: 'Alice', text: 'Hello there.' },
      { speaker: '小明', text: '你好！' },
    ])
    expect(parsed.speakers).toEqual(['Alice', '小明'])
    expect(parsed.problems).toEqual([])
  })

  it('starts a chapter at a ## heading and marks its first line', () => {
    const parsed = parseDialogue('## Intro\nA: one\nB: two\n\n## Main part\nA: three')

    expect(parsed.lines).toEqual([
      { speaker: 'A', text: 'one', chapter: 'Intro' },
      { speaker: 'B', text: 'two' },
      { speaker: 'A', text: 'three', chapter: 'Main part' },
    ])
  })

  it('appends continuation lines to the line above', () => {
    const parsed = parseDialogue('Host: This is a long\nthought that goes on\n\nGuest: Indeed.')

    expect(parsed.lines).toEqual([
      { speaker: 'Host', text: 'This is a long thought that goes on' },
      { speaker: 'Guest', text: 'Indeed.' },
    ])
  })

  it('lets a speaker line with nothing after the colon be filled by the next line', () => {
    expect(parseDialogue('Host:\nWelcome back.').lines).toEqual([
      { speaker: 'Host', text: 'Welcome back.' },
    ])
  })

  it('reports text that continues no speaker line, and speaker lines left empty', () => {
    const parsed = parseDialogue('just some words\nA: fine\nB:\n## Next\nafter a heading')

    expect(parsed.lines).toEqual([{ speaker: 'A', text: 'fine' }])
    expect(parsed.problems).toEqual([
      { line: 1, kind: 'orphan_text' },
      { line: 3, kind: 'empty_line' },
      { line: 4, kind: 'empty_chapter' },
      { line: 5, kind: 'orphan_text' },
    ])
  })

  it('does not take URLs, times or long prose before a colon for speakers', () => {
    const long = 'x'.repeat(MAX_NAME_CHARS + 1)
    const parsed = parseDialogue(
      `A: see\nhttps://example.org/page\nmeet at 10:30\n${long}: text\nthis is a whole sentence: really`,
    )

    expect(parsed.lines).toEqual([
      {
        speaker: 'A',
        text: `see https://example.org/page meet at 10:30 ${long}: text this is a whole sentence: really`,
      },
    ])
  })

  it('drops markdown bold around names', () => {
    expect(parseDialogue('**Alice:** Hi\n**Bob**: Hello').lines).toEqual([
      { speaker: 'Alice', text: 'Hi' },
      { speaker: 'Bob', text: 'Hello' },
    ])
  })

  it('takes one to six # as a heading, and reports chapters without lines', () => {
    const parsed = parseDialogue('# One\n### Two\nA: hi\n#hashtag is text\n## Empty')

    expect(parsed.lines).toEqual([{ speaker: 'A', text: 'hi #hashtag is text', chapter: 'Two' }])
    expect(parsed.problems).toEqual([
      { line: 1, kind: 'empty_chapter' },
      { line: 5, kind: 'empty_chapter' },
    ])
  })

  it('handles Windows line endings and trims around the colon', () => {
    expect(parseDialogue('A :  hi \r\nB：ok').lines).toEqual([
      { speaker: 'A', text: 'hi' },
      { speaker: 'B', text: 'ok' },
    ])
  })

  it('keeps speakers in order of first appearance without duplicates', () => {
    expect(parseDialogue('B: 1\nA: 2\nB: 3\nC: 4').speakers).toEqual(['B', 'A', 'C'])
  })
})

/** Names as people write them: a letter at least, up to four words, no colons or line breaks. */
const name = fc
  .string({ minLength: 1, maxLength: 12, unit: fc.constantFrom(...'AbcZ 小明李-_é'.split('')) })
  .map((s) => s.trim().replace(/\s+/g, ' '))
  .filter((s) => /\p{L}/u.test(s) && s.split(' ').length <= MAX_NAME_WORDS)

/** Spoken text on one line, trimmed and not empty; it may contain colons. */
const said = fc
  .string({ minLength: 1, maxLength: 30, unit: fc.constantFrom(...'ab Z,.!?:：你好。1'.split('')) })
  .map((s) => s.trim())
  .filter((s) => s !== '' && !s.startsWith('//'))

const chapter = fc.option(
  fc
    .string({ minLength: 1, maxLength: 15, unit: fc.constantFrom(...'Ch 1章节:'.split('')) })
    .map((s) => s.trim())
    .filter((s) => s !== ''),
  { nil: undefined },
)

const line: fc.Arbitrary<ScriptLine> = fc
  .record({ speaker: name, text: said, chapter })
  .map(({ chapter: title, ...rest }) => (title === undefined ? rest : { ...rest, chapter: title }))

describe('parseDialogue properties', () => {
  it('reads back exactly what formatDialogue wrote', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 20 }), (lines) => {
        const parsed = parseDialogue(formatDialogue(lines))
        expect(parsed.lines).toEqual(lines)
        expect(parsed.problems).toEqual([])
      }),
    )
  })

  it('never throws, and every line has a known speaker and text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        const parsed = parseDialogue(text)
        for (const l of parsed.lines) {
          expect(parsed.speakers).toContain(l.speaker)
          expect(l.text.trim()).not.toBe('')
          expect(l.speaker.trim()).toBe(l.speaker)
        }
        expect(new Set(parsed.speakers).size).toBe(parsed.speakers.length)
      }),
    )
  })

  it('keeps every non-blank word of the spoken lines', () => {
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 10 }), (lines) => {
        const text = formatDialogue(lines)
        const words = (s: string) => s.split(/\s+/).filter(Boolean)
        const spoken = parseDialogue(text).lines.flatMap((l) => words(l.text))
        expect(spoken).toEqual(lines.flatMap((l) => words(l.text)))
      }),
    )
  })
})
