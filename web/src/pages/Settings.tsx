// Profile, password and API tokens of the signed-in user.

import { useState } from 'react'
import type { FormEvent } from 'react'
import { changePassword, createToken, listTokens, revokeToken, updateProfile } from '../api.ts'
import type { CreatedToken } from '../api.ts'
import { ConfirmButton } from '../components/ConfirmButton.tsx'
import { CopyButton } from '../components/CopyButton.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { useI18n } from '../i18n.ts'
import { formatDate } from '../lib/format.ts'
import { useLoad } from '../lib/useLoad.ts'
import { useSession } from '../session.ts'

export default function SettingsPage() {
  const { t } = useI18n()
  return (
    <div className="stack">
      <h1>{t('settings.title')}</h1>
      <Profile />
      <Password />
      <Tokens />
    </div>
  )
}

function Profile() {
  const { t } = useI18n()
  const { user, signedIn } = useSession()
  const [name, setName] = useState(user?.display_name ?? '')
  const [saved, setSaved] = useState(false)
  const [error, setError] = useState<unknown>(null)
  if (user === null) return null

  const save = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    setSaved(false)
    try {
      signedIn(await updateProfile({ display_name: name.trim() }))
      setSaved(true)
    } catch (caught) {
      setError(caught)
    }
  }

  return (
    <form className="card form" onSubmit={(event) => void save(event)} aria-labelledby="settings-profile">
      <h2 id="settings-profile">{t('settings.profile')}</h2>
      <Field label={t('field.email')}>
        <input value={user.email} readOnly />
      </Field>
      <Field label={t('field.displayName')}>
        <input value={name} onChange={(event) => setName(event.target.value)} autoComplete="name" />
      </Field>
      <p className="muted">{t('settings.role', { role: user.role === 'admin' ? t('role.admin') : t('role.user') })}</p>
      {error !== null && <ErrorMessage error={error} />}
      <p role="status">{saved && t('settings.saved')}</p>
      <div className="actions">
        <button type="submit" className="button">
          {t('action.save')}
        </button>
      </div>
    </form>
  )
}

function Password() {
  const { t } = useI18n()
  const [current, setCurrent] = useState('')
  const [next, setNext] = useState('')
  const [again, setAgain] = useState('')
  const [done, setDone] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const mismatch = again !== '' && again !== next

  const save = async (event: FormEvent) => {
    event.preventDefault()
    if (mismatch) return
    setError(null)
    setDone(false)
    try {
      await changePassword({ current_password: current, new_password: next })
      setCurrent('')
      setNext('')
      setAgain('')
      setDone(true)
    } catch (caught) {
      setError(caught)
    }
  }

  return (
    <form className="card form" onSubmit={(event) => void save(event)} aria-labelledby="settings-password">
      <h2 id="settings-password">{t('settings.password')}</h2>
      <Field label={t('settings.currentPassword')}>
        <input type="password" value={current} onChange={(e) => setCurrent(e.target.value)} required autoComplete="current-password" />
      </Field>
      <Field label={t('settings.newPassword')}>
        <input
          type="password"
          value={next}
          onChange={(e) => setNext(e.target.value)}
          required
          minLength={8}
          autoComplete="new-password"
        />
      </Field>
      <Field label={t('settings.repeatPassword')} hint={<span className="error-inline">{mismatch ? t('settings.mismatch') : ''}</span>}>
        <input
          type="password"
          value={again}
          onChange={(e) => setAgain(e.target.value)}
          required
          autoComplete="new-password"
          aria-invalid={mismatch}
        />
      </Field>
      {error !== null && <ErrorMessage error={error} />}
      <p role="status">{done && t('settings.passwordChanged')}</p>
      <div className="actions">
        <button type="submit" className="button" disabled={mismatch}>
          {t('settings.changePassword')}
        </button>
      </div>
    </form>
  )
}

function Tokens() {
  const { t, language } = useI18n()
  const tokens = useLoad((signal) => listTokens({ signal }), 'tokens')
  const [name, setName] = useState('')
  const [created, setCreated] = useState<CreatedToken | null>(null)
  const [error, setError] = useState<unknown>(null)

  const create = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    try {
      const token = await createToken(name.trim())
      setCreated(token)
      setName('')
      tokens.reload()
    } catch (caught) {
      setError(caught)
    }
  }
  const revoke = async (id: string) => {
    setError(null)
    try {
      await revokeToken(id)
      if (created?.id === id) setCreated(null)
      tokens.set((list) => list.filter((token) => token.id !== id))
    } catch (caught) {
      setError(caught)
    }
  }

  return (
    <section className="card stack-sm" aria-labelledby="settings-tokens">
      <h2 id="settings-tokens">{t('tokens.title')}</h2>
      <p className="muted">{t('tokens.intro')}</p>
      <form className="inline-form" onSubmit={(event) => void create(event)}>
        <Field label={t('tokens.name')}>
          <input value={name} onChange={(event) => setName(event.target.value)} required maxLength={100} />
        </Field>
        <button type="submit" className="button">
          {t('tokens.create')}
        </button>
      </form>
      {created !== null && (
        <div className="banner banner-info stack-sm" role="status">
          <p>{t('tokens.once', { name: created.name })}</p>
          <Field label={t('tokens.value')}>
            <input readOnly value={created.token} className="mono-input" onFocus={(event) => event.target.select()} />
          </Field>
          <div className="actions">
            <CopyButton text={created.token} label={t('tokens.copy')} />
            <button type="button" className="button button-quiet" onClick={() => setCreated(null)}>
              {t('tokens.hide')}
            </button>
          </div>
        </div>
      )}
      {error !== null && <ErrorMessage error={error} />}
      {tokens.state.kind === 'failed' && <ErrorMessage error={tokens.state.error} />}
      {tokens.data !== null && tokens.data.length === 0 && <p className="muted">{t('tokens.none')}</p>}
      <ul className="rows">
        {(tokens.data ?? []).map((token) => (
          <li key={token.id} className="row">
            <span>
              <strong>{token.name}</strong>
              <br />
              <span className="muted">
                {t('tokens.createdAt', { date: formatDate(token.created_at, language) })}
                {token.last_used_at != null && ` · ${t('tokens.lastUsed', { date: formatDate(token.last_used_at, language) })}`}
              </span>
            </span>
            <ConfirmButton
              label={t('tokens.revoke')}
              question={t('tokens.confirmRevoke', { name: token.name })}
              confirmLabel={t('tokens.revoke')}
              onConfirm={() => revoke(token.id)}
            />
          </li>
        ))}
      </ul>
    </section>
  )
}
