// Renders the whole app at a path, as the browser would after navigating there.

import { render } from '@testing-library/react'
import App from '../App.tsx'
import { I18nProvider, LANGUAGE_STORAGE_KEY } from '../i18n.ts'
import type { Language } from '../i18n.ts'
import { SessionProvider } from '../session.ts'

export function renderAt(path: string, language: Language = 'en') {
  window.localStorage.setItem(LANGUAGE_STORAGE_KEY, language)
  window.history.replaceState(null, '', path)
  return render(
    <I18nProvider>
      <SessionProvider>
        <App />
      </SessionProvider>
    </I18nProvider>,
  )
}

export const USER = {
  id: '01J0000000000000000000USER',
  email: 'ada@example.com',
  display_name: 'Ada',
  role: 'user' as const,
  created_at: '2026-01-01T00:00:00Z',
  quota: { chars_per_month: 100000, chars_used_this_month: 2500 },
}

export const ADMIN = { ...USER, id: '01J000000000000000000ADMIN', role: 'admin' as const }
