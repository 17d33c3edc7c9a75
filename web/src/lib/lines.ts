// Script lines as the editor holds them.

import type { ScriptLine } from '../api.ts'

/** A line with a stable key, so React keeps focus and state while lines move. */
export interface EditableLine extends ScriptLine {
  key: string
}

let nextKey = 0
export function keyed(line: ScriptLine): EditableLine {
  nextKey++
  return { ...line, key: `l${nextKey}` }
}

/** The lines as the API takes them, without the editor's keys and with trimmed text. */
export function unkeyed(lines: readonly EditableLine[]): ScriptLine[] {
  return lines.map((line) => {
    const out: ScriptLine = { speaker: line.speaker, text: line.text.trim() }
    if (line.chapter !== undefined && line.chapter.trim() !== '') out.chapter = line.chapter.trim()
    return out
  })
}
