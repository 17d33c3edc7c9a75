import { render, screen } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { Field } from './Field.tsx'

describe('Field', () => {
  it('names the control by its label alone and links the hint', () => {
    render(
      <Field label="Email" hint="We never share it.">
        <input defaultValue="ada@example.com" aria-describedby="other" />
      </Field>,
    )

    const input = screen.getByRole('textbox', { name: 'Email' })
    expect(input).toHaveAccessibleDescription('We never share it.')
    expect(input.getAttribute('aria-describedby')?.split(' ')).toContain('other')
    // The label is a sibling, not a wrapper: browsers would otherwise add the value to the name.
    expect(input.closest('label')).toBeNull()
  })

  it('keeps an id the control already has', () => {
    render(
      <Field label="Voice">
        <select id="studio-voice">
          <option>Alloy</option>
        </select>
      </Field>,
    )

    expect(screen.getByRole('combobox', { name: 'Voice' })).toHaveAttribute('id', 'studio-voice')
  })
})
