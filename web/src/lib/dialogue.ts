// The pasted-dialogue format, for the live preview; the server parses it again by the same
// rules (src/podcast/script.rs):
//   ## Chapter title          starts a chapter (1 to 6 `#`, then a space)
//   Name: what they say       a line; the full-width colon `：` works too, `**Name:**` as well
//   more words                a continuation of the speaker line right above

import type { ScriptLine } from '../api.ts'

/** Longest text before a colon that is still taken as a speaker name; longer ones are prose. */
export const MAX_NAME_CHARS = 40
/** Most words in a speaker name ("Dr. Mary Ann Smith"); more reads as a sentence. */
export const MAX_NAME_WORDS = 4

export interface DialogueProblem {
  /** 1-based line number in the pasted text. */
  line: number
  kind: 'orphan_text' | 'empty_line' | 'empty_chapter'
}

export interface ParsedDialogue {
  lines: ScriptLine[]
  /** Speaker names in order of first appearance. */
  speakers: string[]
  problems: DialogueProblem[]
}

/** `## Title` → the title; null when the line is not a heading. */
function heading(line: string): string | null {
  const match = /^(#{1,6})(?:\s+(.*))?$/u.exec(line)
  return match === null ? null : (match[2] ?? '').trim()
}

/** `Name: text` → name and text, when the part before the first colon looks like a name. */
function speakerLine(line: string): { name: string; said: string } | null {
  const at = line.search(/[:：]/u)
  if (at === -1) return null
  const rawName = line.slice(0, at).trim()
  const name = rawName.replace(/^\*+|\*+$/gu, '').trim()
  let rest = line.slice(at + 1)
  // "https://…" and "at 10:30" are prose, not speaker lines.
  const clock = /\d$/u.test(rawName) && /^\d/u.test(rest)
  if (rest.startsWith('//') || clock || !/\p{L}/u.test(name)) return null
  if ([...name].length > MAX_NAME_CHARS || name.split(/\s+/u).length > MAX_NAME_WORDS || name.startsWith('#')) {
    return null
  }
  if (rawName.startsWith('**') && rest.startsWith('**')) rest = rest.slice(2)
  return { name, said: rest.trim() }
}

export function parseDialogue(text: string): ParsedDialogue {
  const lines: (ScriptLine & { at: number })[] = []
  const problems: DialogueProblem[] = []
  /** A heading read and not yet followed by a line: its title goes on the next line. */
  let chapter: { title: string; at: number } | null = null
  /** The last line read was a speaker line, which a continuation may extend. */
  let open = false

  text.split(/\r\n|\r|\n/u).forEach((raw, index) => {
    const at = index + 1
    const trimmed = raw.trim()
    if (trimmed === '') return
    const title = heading(trimmed)
    if (title !== null) {
      if (chapter !== null) problems.push({ line: chapter.at, kind: 'empty_chapter' })
      chapter = { title, at }
      open = false
      return
    }
    const spoken = speakerLine(trimmed)
    if (spoken !== null) {
      const line: ScriptLine & { at: number } = { speaker: spoken.name, text: spoken.said, at }
      if (chapter !== null && chapter.title !== '') line.chapter = chapter.title
      chapter = null
      lines.push(line)
      open = true
      return
    }
    const previous = lines.at(-1)
    if (!open || previous === undefined) {
      problems.push({ line: at, kind: 'orphan_text' })
      return
    }
    previous.text = previous.text === '' ? trimmed : `${previous.text} ${trimmed}`
  })
  // TypeScript cannot see the assignments inside the callback above.
  const pending = chapter as { title: string; at: number } | null
  if (pending !== null) problems.push({ line: pending.at, kind: 'empty_chapter' })

  const kept: ScriptLine[] = []
  for (const { at, ...line } of lines) {
    if (line.text === '') problems.push({ line: at, kind: 'empty_line' })
    else kept.push(line)
  }
  problems.sort((a, b) => a.line - b.line)
  const speakers = [...new Set(kept.map((line) => line.speaker))]
  return { lines: kept, speakers, problems }
}

/** Writes lines back in the pasted format; `parseDialogue(formatDialogue(x)).lines` is `x`. */
export function formatDialogue(lines: readonly ScriptLine[]): string {
  const out: string[] = []
  for (const line of lines) {
    if (line.chapter !== undefined && line.chapter !== '') {
      if (out.length > 0) out.push('')
      out.push(`## ${line.chapter}`)
    }
    out.push(`${line.speaker}: ${line.text}`)
  }
  return out.join('\n')
}
