// Edits a script: change speaker and text, start chapters, add, delete and reorder lines.

import { Field } from './Field.tsx'
import type { ScriptLine } from '../api.ts'
import { useI18n } from '../i18n.ts'
import { keyed } from '../lib/lines.ts'
import type { EditableLine } from '../lib/lines.ts'

export function LineEditor({
  lines,
  speakers,
  onChange,
}: {
  lines: readonly EditableLine[]
  speakers: readonly string[]
  onChange: (lines: EditableLine[]) => void
}) {
  const { t } = useI18n()
  const edit = (index: number, change: Partial<ScriptLine>) => {
    onChange(
      lines.map((line, i) => {
        if (i !== index) return line
        const next: EditableLine = { ...line, ...change }
        if (next.chapter === '') delete next.chapter
        return next
      }),
    )
  }
  const move = (index: number, by: -1 | 1) => {
    const target = index + by
    if (target < 0 || target >= lines.length) return
    const next = [...lines]
    const [line] = next.splice(index, 1)
    if (line !== undefined) next.splice(target, 0, line)
    onChange(next)
  }
  const insertAfter = (index: number) => {
    const previous = lines[index]
    const speaker =
      speakers.find((s) => s !== previous?.speaker) ?? previous?.speaker ?? speakers[0] ?? ''
    const next = [...lines]
    next.splice(index + 1, 0, keyed({ speaker, text: '' }))
    onChange(next)
  }

  return (
    <div className="stack-sm">
      <ol className="lines">
        {lines.map((line, index) => {
          const n = index + 1
          return (
            <li key={line.key} className="line">
              <fieldset>
                <legend>{t('lines.line', { n })}</legend>
                <Field label={t('lines.chapter')}>
                  <input
                    value={line.chapter ?? ''}
                    onChange={(event) => edit(index, { chapter: event.target.value })}
                    placeholder={t('lines.chapterPlaceholder')}
                  />
                </Field>
                <Field label={t('lines.speaker')}>
                  <select value={line.speaker} onChange={(event) => edit(index, { speaker: event.target.value })}>
                    {!speakers.includes(line.speaker) && <option value={line.speaker}>{line.speaker}</option>}
                    {speakers.map((s) => (
                      <option key={s} value={s}>
                        {s}
                      </option>
                    ))}
                  </select>
                </Field>
                <Field label={t('lines.text')}>
                  <textarea
                    value={line.text}
                    rows={2}
                    required
                    onChange={(event) => edit(index, { text: event.target.value })}
                  />
                </Field>
                <div className="actions">
                  <button
                    type="button"
                    className="button button-quiet"
                    onClick={() => move(index, -1)}
                    disabled={index === 0}
                    aria-label={t('lines.moveUp', { n })}
                  >
                    ↑
                  </button>
                  <button
                    type="button"
                    className="button button-quiet"
                    onClick={() => move(index, 1)}
                    disabled={index === lines.length - 1}
                    aria-label={t('lines.moveDown', { n })}
                  >
                    ↓
                  </button>
                  <button type="button" className="button button-quiet" onClick={() => insertAfter(index)}>
                    {t('lines.insert')}
                  </button>
                  <button
                    type="button"
                    className="button button-quiet button-danger"
                    onClick={() => onChange(lines.filter((_, i) => i !== index))}
                    aria-label={t('lines.delete', { n })}
                  >
                    {t('action.delete')}
                  </button>
                </div>
              </fieldset>
            </li>
          )
        })}
      </ol>
      <button type="button" className="button button-quiet" onClick={() => insertAfter(lines.length - 1)}>
        {t('lines.add')}
      </button>
    </div>
  )
}
