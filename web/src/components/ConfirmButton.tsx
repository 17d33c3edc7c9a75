// A destructive action that asks once more, in place, before it runs.

import { useEffect, useRef, useState } from 'react'
import { useI18n } from '../i18n.ts'

export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  disabled = false,
}: {
  label: string
  question: string
  confirmLabel: string
  onConfirm: () => void | Promise<void>
  disabled?: boolean
}) {
  const { t } = useI18n()
  const [asking, setAsking] = useState(false)
  const [busy, setBusy] = useState(false)
  const confirmRef = useRef<HTMLButtonElement>(null)
  const openRef = useRef<HTMLButtonElement>(null)

  const opened = useRef(false)

  // Focus goes to the confirm button, and back to the opener when the question closes.
  useEffect(() => {
    if (asking) {
      opened.current = true
      confirmRef.current?.focus()
    } else if (opened.current) {
      opened.current = false
      openRef.current?.focus()
    }
  }, [asking])

  if (!asking) {
    return (
      <button
        ref={openRef}
        type="button"
        className="button button-quiet button-danger"
        onClick={() => setAsking(true)}
        disabled={disabled}
      >
        {label}
      </button>
    )
  }
  const run = async () => {
    setBusy(true)
    try {
      await onConfirm()
    } finally {
      setBusy(false)
      setAsking(false)
    }
  }
  return (
    <span
      role="group"
      aria-label={question}
      className="confirm"
      onKeyDown={(event) => {
        if (event.key === 'Escape' && !busy) setAsking(false)
      }}
    >
      <span>{question}</span>
      <button ref={confirmRef} type="button" className="button button-danger" onClick={() => void run()} disabled={busy}>
        {confirmLabel}
      </button>
      <button type="button" className="button button-quiet" onClick={() => setAsking(false)} disabled={busy}>
        {t('action.cancel')}
      </button>
    </span>
  )
}
