// The pasted-dialogue format, for the live preview (the server parses it again on its side):
//   ## Chapter title          starts a chapter (applies to the next spoken line)
//   Name: what they say       a line; the full-width colon `：` works too
//   more words                a continuation, appended to the line above

import type { ScriptLine } from '../api.ts'

/** Longest speaker name taken as a name; longer prefixes before a colon are just text. */
export const MAX_NAME_CHARS = 40

export interface DialogueProblem {
  /** 1-based line number in the pasted text. */
  line: number
  kind: 'orphan_text' | 'empty_line'
}

export interface ParsedDialogue {
  lines: ScriptLine[]
  /** Speaker names in order of first appearance. */
  speakers: string[]
  problems: DialogueProblem[]
}

const SPEAKER_LINE = /^([^:：#\n][^:：\n]*?)\s*[:：]\s*(.*)$/u
const CHAPTER_LINE = /^##\s*(.*)$/u

function speakerLine(text: string): { name: string; said: string } | null {
  const match = SPEAKER_LINE.exec(text)
  if (match === null) return null
  const name = (match[1] ?? '').trim()
  // "http://…", "Note 3: …" as long prose, or a time "10:30" are not speakers.
  if (name === '' || [...name].length > MAX_NAME_CHARS || /^\d+$/u.test(name)) return null
  const said = match[2] ?? ''
  if (said.startsWith('//')) return null
  return { name, said: said.trim() }
}

export function parseDialogue(text: string): ParsedDialogue {
  const lines: (ScriptLine & { at: number })[] = []
  const problems: DialogueProblem[] = []
  let chapter: string | null = null

  text.split(/\r\n|\r|\n/u).forEach((raw, index) => {
    const at = index + 1
    const trimmed = raw.trim()
    if (trimmed === '') return
    const heading = CHAPTER_LINE.exec(trimmed)
    if (heading !== null) {
      const title = (heading[1] ?? '').trim()
      chapter = title === '' ? null : title
      return
    }
    const spoken = speakerLine(trimmed)
    if (spoken !== null) {
      const line: ScriptLine & { at: number } = { speaker: spoken.name, text: spoken.said, at }
      if (chapter !== null) line.chapter = chapter
      chapter = null
      lines.push(line)
      return
    }
    const previous = lines.at(-1)
    if (previous === undefined) {
      problems.push({ line: at, kind: 'orphan_text' })
      return
    }
    previous.text = previous.text === '' ? trimmed : `${previous.text} ${trimmed}`
  })

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
