// Copies a text (or one fetched on click, like a fresh share link) and says so.

import { useState } from 'react'
import { Field } from './Field.tsx'
import { errorText } from '../errors.ts'
import { useI18n } from '../i18n.ts'

async function writeClipboard(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    return false
  }
}

export function CopyButton({
  text,
  label,
  className = 'button button-quiet',
}: {
  /** The text, or a function that makes it when clicked. */
  text: string | (() => Promise<string>)
  label: string
  className?: string
}) {
  const { t } = useI18n()
  const [state, setState] = useState<
    { kind: 'idle' } | { kind: 'busy' } | { kind: 'copied' } | { kind: 'manual'; text: string } | { kind: 'failed'; message: string }
  >({ kind: 'idle' })

  const copy = async () => {
    setState({ kind: 'busy' })
    let value: string
    try {
      value = typeof text === 'string' ? text : await text()
    } catch (error) {
      setState({ kind: 'failed', message: errorText(error, t) })
      return
    }
    // Without clipboard access (plain http, old browsers) the text is shown to copy by hand.
    setState((await writeClipboard(value)) ? { kind: 'copied' } : { kind: 'manual', text: value })
  }

  return (
    <span className="copy">
      <button type="button" className={className} onClick={() => void copy()} disabled={state.kind === 'busy'}>
        {label}
      </button>
      <span role="status" className="copy-status">
        {state.kind === 'copied' && t('copy.done')}
        {state.kind === 'failed' && state.message}
      </span>
      {state.kind === 'manual' && (
        <Field label={t('copy.manual')} className="field-inline">
          <input readOnly value={state.text} onFocus={(event) => event.target.select()} />
        </Field>
      )}
    </span>
  )
}
