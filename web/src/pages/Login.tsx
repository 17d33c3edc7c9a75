// Sign in, then back to where the user was (or the Studio).

import { useEffect, useState } from 'react'
import type { FormEvent } from 'react'
import { getSetup, login } from '../api.ts'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { Link } from '../components/Link.tsx'
import { useI18n } from '../i18n.ts'
import { useLoad } from '../lib/useLoad.ts'
import { navigate, safeNext, useLocation } from '../router.ts'
import { useSession } from '../session.ts'

export default function LoginPage() {
  const { t } = useI18n()
  const { query } = useLocation()
  const session = useSession()
  const setup = useLoad((signal) => getSetup({ signal }), 'setup')
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const next = safeNext(query.get('next'))
  const signedIn = session.user !== null

  // Someone already signed in has nothing to do here.
  useEffect(() => {
    if (signedIn) navigate(next, { replace: true })
  }, [signedIn, next])

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const user = await login(email.trim(), password)
      session.signedIn(user)
      navigate(next, { replace: true })
    } catch (caught) {
      setError(caught)
      setPassword('')
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="card narrow" aria-labelledby="login-heading">
      <h1 id="login-heading">{t('login.title')}</h1>
      {query.get('expired') === '1' && (
        <p role="status" className="banner banner-info">
          {t('login.expired')}
        </p>
      )}
      {setup.data?.needed === true && (
        <p className="banner banner-info">
          {t('login.setupNeeded')} <Link to="/setup">{t('setup.title')}</Link>
        </p>
      )}
      <form className="form" onSubmit={(event) => void submit(event)}>
        <Field label={t('field.email')}>
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="username" />
        </Field>
        <Field label={t('field.password')}>
          <input
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
            autoComplete="current-password"
          />
        </Field>
        {error !== null && <ErrorMessage error={error} />}
        <button type="submit" className="button" disabled={busy}>
          {busy ? t('common.working') : t('login.submit')}
        </button>
      </form>
      {setup.data?.registration !== 'closed' && (
        <p className="muted">
          {t('login.noAccount')} <Link to="/register">{t('register.title')}</Link>
        </p>
      )}
    </section>
  )
}
