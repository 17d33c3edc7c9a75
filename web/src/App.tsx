// The app shell: header with navigation and language, the route table (each page its own
// lazily loaded chunk), and the access rules (signed in, admin) in front of the pages.

import { Suspense, lazy, useEffect, useRef } from 'react'
import type { ComponentType, LazyExoticComponent } from 'react'
import { ErrorMessage } from './components/ErrorMessage.tsx'
import { Link } from './components/Link.tsx'
import { OfflineBanner } from './components/OfflineBanner.tsx'
import { LANGUAGES, useI18n } from './i18n.ts'
import type { MessageKey } from './i18n.ts'
import { loginPathFor, matchPath, navigate, useLocation } from './router.ts'
import { useSession } from './session.ts'

type Access = 'public' | 'user' | 'admin'
type Page = LazyExoticComponent<ComponentType<{ params: Record<string, string> }>>

interface Route {
  pattern: string
  page: Page
  access: Access
}

const Setup = lazy(() => import('./pages/Setup.tsx'))
const Login = lazy(() => import('./pages/Login.tsx'))
const Register = lazy(() => import('./pages/Register.tsx'))
const Status = lazy(() => import('./pages/Status.tsx'))
const Studio = lazy(() => import('./pages/Studio.tsx'))
const Library = lazy(() => import('./pages/Library.tsx'))
const Transcripts = lazy(() => import('./pages/Transcripts.tsx'))
const Transcript = lazy(() => import('./pages/Transcript.tsx'))
const Podcasts = lazy(() => import('./pages/Podcasts.tsx'))
const Show = lazy(() => import('./pages/Show.tsx'))
const EpisodeWizard = lazy(() => import('./pages/EpisodeWizard.tsx'))
const Usage = lazy(() => import('./pages/Usage.tsx'))
const Settings = lazy(() => import('./pages/Settings.tsx'))
const Admin = lazy(() => import('./pages/Admin.tsx'))
const Models = lazy(() => import('./pages/Models.tsx'))
const Monitoring = lazy(() => import('./pages/Monitoring.tsx'))

const ROUTES: readonly Route[] = [
  { pattern: '/setup', page: Setup, access: 'public' },
  { pattern: '/login', page: Login, access: 'public' },
  { pattern: '/register', page: Register, access: 'public' },
  { pattern: '/status', page: Status, access: 'public' },
  { pattern: '/studio', page: Studio, access: 'user' },
  { pattern: '/library', page: Library, access: 'user' },
  { pattern: '/transcripts', page: Transcripts, access: 'user' },
  { pattern: '/transcripts/:id', page: Transcript, access: 'user' },
  { pattern: '/podcasts', page: Podcasts, access: 'user' },
  { pattern: '/podcasts/:id', page: Show, access: 'user' },
  { pattern: '/podcasts/:id/new', page: EpisodeWizard, access: 'user' },
  { pattern: '/usage', page: Usage, access: 'user' },
  { pattern: '/settings', page: Settings, access: 'user' },
  { pattern: '/admin', page: Admin, access: 'admin' },
  { pattern: '/admin/models', page: Models, access: 'admin' },
  { pattern: '/admin/monitoring', page: Monitoring, access: 'admin' },
]

const NAV: readonly { to: string; label: MessageKey; admin?: boolean }[] = [
  { to: '/studio', label: 'nav.studio' },
  { to: '/library', label: 'nav.library' },
  { to: '/transcripts', label: 'nav.transcripts' },
  { to: '/podcasts', label: 'nav.podcasts' },
  { to: '/usage', label: 'nav.usage' },
  { to: '/settings', label: 'nav.settings' },
  { to: '/admin', label: 'nav.admin', admin: true },
  { to: '/admin/models', label: 'nav.models', admin: true },
  { to: '/admin/monitoring', label: 'nav.monitoring', admin: true },
]

function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, { replace: true }), [to])
  return null
}

export default function App() {
  const { t } = useI18n()
  const location = useLocation()
  const session = useSession()

  const found = ROUTES.map((route) => ({ route, params: matchPath(route.pattern, location.path) })).find(
    (m) => m.params !== null,
  )

  const pattern = found?.route.pattern
  const mainRef = useRef<HTMLElement>(null)
  const firstPath = useRef(location.path)

  // After an in-app navigation, keyboard and screen reader users start at the new page.
  useEffect(() => {
    if (location.path !== firstPath.current) {
      firstPath.current = ''
      mainRef.current?.focus({ preventScroll: true })
    }
  }, [location.path])
  useEffect(() => {
    const key = pattern === undefined ? 'page.notFound' : (TITLES[pattern] ?? 'app.tagline')
    document.title = `${t(key)} · ${t('app.name')}`
  }, [pattern, t])

  let content
  if (location.path === '/') {
    content = <Redirect to={session.user !== null ? '/studio' : '/login'} />
  } else if (found === undefined) {
    content = (
      <section className="card">
        <h1>{t('page.notFound')}</h1>
        <Link to="/studio">{t('nav.studio')}</Link>
      </section>
    )
  } else {
    const { route, params } = found
    const Page = route.page
    if (route.access !== 'public' && session.state.kind === 'loading') {
      content = <p className="muted">{t('common.loading')}</p>
    } else if (route.access !== 'public' && session.state.kind === 'failed') {
      content = (
        <section className="card">
          <ErrorMessage error={session.state.error} />
          <button type="button" className="button" onClick={() => void session.refresh()}>
            {t('action.retry')}
          </button>
        </section>
      )
    } else if (route.access !== 'public' && session.state.kind === 'signed-out') {
      content = <Redirect to={loginPathFor(location.href, false)} />
    } else if (route.access === 'admin' && session.user?.role !== 'admin') {
      content = (
        <section className="card">
          <p role="alert">{t('error.forbidden')}</p>
        </section>
      )
    } else {
      content = <Page params={params ?? {}} />
    }
  }

  return (
    <div className="app">
      <a className="skip" href="#main">
        {t('nav.skip')}
      </a>
      <Header />
      <OfflineBanner />
      <main id="main" ref={mainRef} tabIndex={-1} className="main">
        <Suspense fallback={<p className="muted">{t('common.loading')}</p>}>{content}</Suspense>
      </main>
    </div>
  )
}

/** The browser tab's title per route. */
const TITLES: Partial<Record<string, MessageKey>> = {
  '/setup': 'setup.title',
  '/login': 'login.title',
  '/register': 'register.title',
  '/status': 'status.heading',
  '/studio': 'nav.studio',
  '/library': 'nav.library',
  '/transcripts': 'nav.transcripts',
  '/transcripts/:id': 'nav.transcripts',
  '/podcasts': 'nav.podcasts',
  '/podcasts/:id': 'nav.podcasts',
  '/podcasts/:id/new': 'wizard.title',
  '/usage': 'nav.usage',
  '/settings': 'nav.settings',
  '/admin': 'nav.admin',
  '/admin/models': 'models.title',
  '/admin/monitoring': 'monitoring.title',
}

function Header() {
  const { t, language, setLanguage } = useI18n()
  const { path } = useLocation()
  const session = useSession()
  const user = session.user
  const shown = NAV.filter((item) => item.admin !== true || user?.role === 'admin')
  // The most specific entry is the current one: the Models page is under /admin, but not Admin.
  const current = shown
    .filter((item) => path === item.to || path.startsWith(`${item.to}/`))
    .sort((a, b) => b.to.length - a.to.length)[0]?.to

  return (
    <header className="masthead">
      <Link to={user === null ? '/login' : '/studio'} className="brand">
        {t('app.name')}
      </Link>
      {user !== null && (
        <nav aria-label={t('nav.label')} className="nav">
          {shown.map((item) => (
            <Link key={item.to} to={item.to} className="nav-link" aria-current={item.to === current ? 'page' : undefined}>
              {t(item.label)}
            </Link>
          ))}
        </nav>
      )}
      <div className="masthead-end">
        <div className="language">
          <label htmlFor="language-select" className="visually-hidden">
            {t('language.label')}
          </label>
          <select
            id="language-select"
            value={language}
            onChange={(event) => {
              const picked = LANGUAGES.find((l) => l.code === event.target.value)
              if (picked) setLanguage(picked.code)
            }}
          >
            {LANGUAGES.map((l) => (
              <option key={l.code} value={l.code} lang={l.code}>
                {l.name}
              </option>
            ))}
          </select>
        </div>
        {user !== null && (
          <button type="button" className="button button-quiet" onClick={() => void session.signOut()}>
            {t('action.signOut')}
          </button>
        )}
      </div>
    </header>
  )
}
