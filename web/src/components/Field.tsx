// A labelled form control. The label sits next to the control (linked by id) rather than
// around it, so the control's accessible name is the label alone, without its value.

import { cloneElement, useId } from 'react'
import type { ReactElement, ReactNode } from 'react'

export function Field({
  label,
  children,
  hint,
  className = '',
}: {
  label: ReactNode
  /** One input, select or textarea; it gets the id. */
  children: ReactElement<{ id?: string; 'aria-describedby'?: string }>
  /** Shown under the control and announced with it. */
  hint?: ReactNode
  className?: string
}) {
  const generated = useId()
  const id = children.props.id ?? generated
  const hintId = `${id}-hint`
  const describedBy = [children.props['aria-describedby'], hint === undefined ? undefined : hintId]
    .filter(Boolean)
    .join(' ')
  return (
    <div className={`field ${className}`.trim()}>
      <label htmlFor={id}>{label}</label>
      {cloneElement(children, { id, ...(describedBy === '' ? {} : { 'aria-describedby': describedBy }) })}
      {hint !== undefined && (
        <small id={hintId} className="muted">
          {hint}
        </small>
      )}
    </div>
  )
}
