// Create an account under the server's policy: open, by invite code, or closed.

import { useState } from 'react'
import type { FormEvent } from 'react'
import { ApiError, getSetup, register } from '../api.ts'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { Link } from '../components/Link.tsx'
import { useI18n } from '../i18n.ts'
import { useLoad } from '../lib/useLoad.ts'
import { navigate, useLocation } from '../router.ts'
import { useSession } from '../session.ts'

export default function RegisterPage() {
  const { t } = useI18n()
  const { query } = useLocation()
  const session = useSession()
  const setup = useLoad((signal) => getSetup({ signal }), 'setup')
  const [email, setEmail] = useState('')
  const [name, setName] = useState('')
  const [password, setPassword] = useState('')
  const [invite, setInvite] = useState(() => query.get('invite') ?? '')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)

  // The policy comes from the server when it says it, else from a `registration_closed` answer.
  const closed =
    setup.data?.registration === 'closed' || (error instanceof ApiError && error.code === 'registration_closed')
  const policy = setup.data?.registration
  const inviteRequired = policy === 'invite'

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const user = await register({
        email: email.trim(),
        password,
        ...(name.trim() === '' ? {} : { display_name: name.trim() }),
        ...(invite.trim() === '' ? {} : { invite_code: invite.trim() }),
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
    <section className="card narrow" aria-labelledby="register-heading">
      <h1 id="register-heading">{t('register.title')}</h1>
      {closed ? (
        <p role="alert" className="banner banner-warn">
          {t('register.closed')}
        </p>
      ) : (
        <form className="form" onSubmit={(event) => void submit(event)}>
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
          {policy !== 'open' && (
            <Field label={inviteRequired ? t('register.invite') : t('register.inviteOptional')}>
              <input
                value={invite}
                onChange={(e) => setInvite(e.target.value)}
                required={inviteRequired}
                autoComplete="off"
                spellCheck={false}
              />
            </Field>
          )}
          {error !== null && <ErrorMessage error={error} />}
          <button type="submit" className="button" disabled={busy}>
            {busy ? t('common.working') : t('register.submit')}
          </button>
        </form>
      )}
      <p className="muted">
        {t('register.haveAccount')} <Link to="/login">{t('login.title')}</Link>
      </p>
    </section>
  )
}
