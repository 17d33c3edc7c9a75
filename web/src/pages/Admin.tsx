// For admins: users (role, disable, quota), invite codes, the system and backups.

import { useEffect, useState } from 'react'
import type { FormEvent } from 'react'
import {
  createInvite,
  deleteInvite,
  getSystem,
  listBackups,
  listInvites,
  listUsers,
  startBackup,
  updateUser,
} from '../api.ts'
import type { Role, UserPatch, UserSummary } from '../api.ts'
import { ConfirmButton } from '../components/ConfirmButton.tsx'
import { CopyButton } from '../components/CopyButton.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { LoadMore } from '../components/LoadMore.tsx'
import { useI18n } from '../i18n.ts'
import { formatBytes, formatDate, formatDuration, formatNumber } from '../lib/format.ts'

/** Typing pauses this long before the user search runs. */
const SEARCH_DELAY_MS = 300
import { useLoad } from '../lib/useLoad.ts'
import { usePaged } from '../lib/usePaged.ts'
import { useSession } from '../session.ts'
import { Field } from '../components/Field.tsx'

export default function AdminPage() {
  const { t } = useI18n()
  return (
    <div className="stack">
      <h1>{t('admin.title')}</h1>
      <System />
      <Users />
      <Invites />
      <Backups />
    </div>
  )
}

function System() {
  const { t, language } = useI18n()
  const system = useLoad((signal) => getSystem({ signal }), 'system')
  const info = system.data
  return (
    <section className="card stack-sm" aria-labelledby="admin-system">
      <div className="card-head">
        <h2 id="admin-system">{t('admin.system')}</h2>
        <button type="button" className="button button-quiet" onClick={system.reload}>
          {t('action.refresh')}
        </button>
      </div>
      {system.state.kind === 'failed' && <ErrorMessage error={system.state.error} />}
      {info !== null && (
        <dl className="rows">
          <div className="row">
            <dt>{t('status.version')}</dt>
            <dd className="mono">{info.version}</dd>
          </div>
          <div className="row">
            <dt>{t('admin.uptime')}</dt>
            <dd>{formatDuration(info.uptime_s * 1000)}</dd>
          </div>
          <div className="row">
            <dt>{t('admin.dbSize')}</dt>
            <dd>{formatBytes(info.db_bytes, language)}</dd>
          </div>
          <div className="row">
            <dt>{t('admin.jobs')}</dt>
            <dd>
              {t('admin.jobsText', {
                queued: info.jobs.queued,
                running: info.jobs.running,
                failed: info.jobs.failed_24h,
              })}
            </dd>
          </div>
          <div className="row">
            <dt>{t('admin.storage')}</dt>
            <dd>
              {info.storage.kind}
              {info.storage.objects != null && ` · ${t('admin.objects', { count: formatNumber(info.storage.objects, language) })}`}
            </dd>
          </div>
        </dl>
      )}
    </section>
  )
}

function Users() {
  const { t } = useI18n()
  const [search, setSearch] = useState('')
  const [q, setQ] = useState('')
  useEffect(() => {
    const timer = window.setTimeout(() => setQ(search.trim()), SEARCH_DELAY_MS)
    return () => window.clearTimeout(timer)
  }, [search])
  const users = usePaged((cursor, signal) => listUsers({ cursor, limit: 50, q }, { signal }), q)

  return (
    <section className="card stack-sm" aria-labelledby="admin-users">
      <h2 id="admin-users">{t('admin.users')}</h2>
      <Field label={t('admin.searchUsers')}>
        <input type="search" value={search} onChange={(event) => setSearch(event.target.value)} />
      </Field>
      {users.error !== null && <ErrorMessage error={users.error} />}
      <ul className="items">
        {users.items.map((user) => (
          <UserRow key={user.id} user={user} onChange={(next) => users.update(user.id, () => next)} />
        ))}
      </ul>
      {users.hasMore && !users.loading && <LoadMore onLoad={users.loadMore} />}
    </section>
  )
}

function UserRow({ user, onChange }: { user: UserSummary; onChange: (user: UserSummary) => void }) {
  const { t, language } = useI18n()
  const me = useSession().user
  const [quota, setQuota] = useState(user.quota_chars_per_month === null ? '' : String(user.quota_chars_per_month))
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const self = me?.id === user.id

  const patch = async (change: UserPatch) => {
    setBusy(true)
    setError(null)
    try {
      onChange(await updateUser(user.id, change))
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(false)
    }
  }
  const saveQuota = (event: FormEvent) => {
    event.preventDefault()
    void patch({ quota_chars_per_month: quota.trim() === '' ? null : Number(quota) })
  }

  return (
    <li className="item user-row">
      <div className="item-head">
        <span>
          <strong>{user.display_name ?? user.email}</strong>
          {user.display_name !== null && <span className="muted"> · {user.email}</span>}
        </span>
        {user.disabled && <span className="badge badge-failed">{t('admin.disabled')}</span>}
      </div>
      <p className="muted">{t('admin.since', { date: formatDate(user.created_at, language) })}</p>
      <div className="filters">
        <Field label={t('admin.role')}>
          <select
            value={user.role}
            disabled={busy || self}
            onChange={(event) => void patch({ role: event.target.value as Role })}
          >
            <option value="user">{t('role.user')}</option>
            <option value="admin">{t('role.admin')}</option>
          </select>
        </Field>
        <form className="inline-form" onSubmit={saveQuota}>
          <Field label={t('admin.quota')}>
            <input
              type="number"
              min={0}
              step={1000}
              value={quota}
              placeholder={t('admin.defaultQuota')}
              onChange={(event) => setQuota(event.target.value)}
            />
          </Field>
          <button type="submit" className="button button-quiet" disabled={busy}>
            {t('action.save')}
          </button>
        </form>
        <label className="check-field">
          <input
            type="checkbox"
            checked={user.disabled}
            disabled={busy || self}
            onChange={(event) => void patch({ disabled: event.target.checked })}
          />
          <span>{t('admin.disable')}</span>
        </label>
      </div>
      {error !== null && <ErrorMessage error={error} />}
    </li>
  )
}

/** Invite codes expire after a week unless the admin picks otherwise. */
const INVITE_DAYS = [1, 7, 30] as const

function Invites() {
  const { t, language } = useI18n()
  const invites = useLoad((signal) => listInvites({ signal }), 'invites')
  const [days, setDays] = useState<number>(7)
  const [error, setError] = useState<unknown>(null)

  const create = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    try {
      const invite = await createInvite(days * 86_400)
      invites.set((list) => [invite, ...list])
    } catch (caught) {
      setError(caught)
    }
  }
  const remove = async (code: string) => {
    setError(null)
    try {
      await deleteInvite(code)
      invites.set((list) => list.filter((i) => i.code !== code))
    } catch (caught) {
      setError(caught)
    }
  }
  const link = (code: string) => `${window.location.origin}/register?invite=${encodeURIComponent(code)}`

  return (
    <section className="card stack-sm" aria-labelledby="admin-invites">
      <h2 id="admin-invites">{t('admin.invites')}</h2>
      <form className="inline-form" onSubmit={(event) => void create(event)}>
        <Field label={t('admin.inviteExpiry')}>
          <select value={days} onChange={(event) => setDays(Number(event.target.value))}>
            {INVITE_DAYS.map((d) => (
              <option key={d} value={d}>
                {t('admin.days', { days: d })}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit" className="button">
          {t('admin.createInvite')}
        </button>
      </form>
      {error !== null && <ErrorMessage error={error} />}
      {invites.state.kind === 'failed' && <ErrorMessage error={invites.state.error} />}
      {invites.data !== null && invites.data.length === 0 && <p className="muted">{t('admin.noInvites')}</p>}
      <ul className="rows">
        {(invites.data ?? []).map((invite) => (
          <li key={invite.code} className="row">
            <span>
              <span className="mono">{invite.code}</span>
              <br />
              <span className="muted">
                {invite.used_at != null
                  ? t('admin.inviteUsed', { date: formatDate(invite.used_at, language) })
                  : invite.status === 'expired'
                    ? t('admin.inviteExpired')
                    : invite.expires_at !== null
                      ? t('admin.inviteExpires', { date: formatDate(invite.expires_at, language) })
                      : t('admin.inviteNoExpiry')}
              </span>
            </span>
            <span className="actions">
              <CopyButton text={link(invite.code)} label={t('admin.copyInvite')} />
              <ConfirmButton
                label={t('action.delete')}
                question={t('admin.confirmDeleteInvite')}
                confirmLabel={t('action.delete')}
                onConfirm={() => remove(invite.code)}
              />
            </span>
          </li>
        ))}
      </ul>
    </section>
  )
}

function Backups() {
  const { t, language } = useI18n()
  const backups = useLoad((signal) => listBackups({ signal }), 'backups')
  const [started, setStarted] = useState(false)
  const [error, setError] = useState<unknown>(null)

  const start = async () => {
    setError(null)
    try {
      await startBackup()
      setStarted(true)
    } catch (caught) {
      setError(caught)
    }
  }

  return (
    <section className="card stack-sm" aria-labelledby="admin-backups">
      <div className="card-head">
        <h2 id="admin-backups">{t('admin.backups')}</h2>
        <span className="actions">
          <button type="button" className="button button-quiet" onClick={backups.reload}>
            {t('action.refresh')}
          </button>
          <button type="button" className="button" onClick={() => void start()}>
            {t('admin.startBackup')}
          </button>
        </span>
      </div>
      <p role="status">{started && t('admin.backupStarted')}</p>
      {error !== null && <ErrorMessage error={error} />}
      {backups.state.kind === 'failed' && <ErrorMessage error={backups.state.error} />}
      {backups.data !== null && backups.data.length === 0 && <p className="muted">{t('admin.noBackups')}</p>}
      {(backups.data ?? []).length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">{t('admin.backupName')}</th>
                <th scope="col">{t('admin.backupDate')}</th>
                <th scope="col" className="num">
                  {t('admin.backupSize')}
                </th>
                <th scope="col">{t('library.status')}</th>
              </tr>
            </thead>
            <tbody>
              {(backups.data ?? []).map((backup) => (
                <tr key={backup.name}>
                  <td className="mono" title={backup.sha256 === null ? undefined : `sha256 ${backup.sha256}`}>
                    {backup.name}
                  </td>
                  <td>{formatDate(backup.created_at, language)}</td>
                  <td className="num">{formatBytes(backup.size_bytes, language)}</td>
                  <td title={backup.error ?? undefined}>{backup.status ?? '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
