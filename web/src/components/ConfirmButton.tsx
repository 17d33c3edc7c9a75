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

  useEffect(() => {
    if (asking) confirmRef.current?.focus()
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
    <span role="group" aria-label={question} className="confirm">
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
