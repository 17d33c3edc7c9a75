// First run: creates the admin with the one-time token the server printed in its log.

import { useState } from 'react'
import type { FormEvent } from 'react'
import { completeSetup, getSetup } from '../api.ts'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { Link } from '../components/Link.tsx'
import { useI18n } from '../i18n.ts'
import { useLoad } from '../lib/useLoad.ts'
import { navigate, useLocation } from '../router.ts'
import { useSession } from '../session.ts'

export default function SetupPage() {
  const { t } = useI18n()
  const { query } = useLocation()
  const session = useSession()
  const setup = useLoad((signal) => getSetup({ signal }), 'setup')
  const [token, setToken] = useState(() => query.get('token') ?? '')
  const [email, setEmail] = useState('')
  const [name, setName] = useState('')
  const [password, setPassword] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const user = await completeSetup({
        setup_token: token.trim(),
        email: email.trim(),
        password,
        ...(name.trim() === '' ? {} : { display_name: name.trim() }),
      })
      session.signedIn(user)
      navigate('/studio', { replace: true })
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="card narrow" aria-labelledby="setup-heading">
      <h1 id="setup-heading">{t('setup.title')}</h1>
      {setup.state.kind === 'failed' && <ErrorMessage error={setup.state.error} />}
      {setup.data?.needed === false ? (
        <p>
          {t('setup.done')} <Link to="/login">{t('login.title')}</Link>
        </p>
      ) : (
        <form className="form" onSubmit={(event) => void submit(event)}>
          <p className="muted">{t('setup.intro')}</p>
          <Field label={t('setup.token')}>
            <input
              value={token}
              onChange={(e) => setToken(e.target.value)}
              required
              autoComplete="off"
              spellCheck={false}
              className="mono-input"
            />
          </Field>
          <Field label={t('field.email')}>
            <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="email" />
          </Field>
          <Field label={t('field.displayName')}>
            <input value={name} onChange={(e) => setName(e.target.value)} autoComplete="name" />
          </Field>
          <Field label={t('field.password')} hint={t('field.passwordHint')}>
            <input
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
              minLength={8}
              autoComplete="new-password"
            />
          </Field>
          {error !== null && <ErrorMessage error={error} />}
          <button type="submit" className="button" disabled={busy}>
            {busy ? t('common.working') : t('setup.submit')}
          </button>
        </form>
      )}
    </section>
  )
}
