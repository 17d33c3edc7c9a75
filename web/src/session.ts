// Who is signed in: loads `/api/me` once, keeps the user for every page, and turns an
// expired session (any 401 `unauthenticated`) into a trip to the login page and back.

import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useState } from 'react'
import type { ReactNode } from 'react'
import { ApiError, getMe, logout, setUnauthenticatedHandler } from './api.ts'
import type { User } from './api.ts'
import { loginPathFor, navigate } from './router.ts'

export type SessionState =
  | { kind: 'loading' }
  | { kind: 'signed-out' }
  | { kind: 'signed-in'; user: User }
  /** `/api/me` failed for another reason than 401 (server down, network). */
  | { kind: 'failed'; error: unknown }

export interface Session {
  state: SessionState
  /** The user, when signed in. */
  user: User | null
  signedIn: (user: User) => void
  signOut: () => Promise<void>
  /** Reloads `/api/me` (quota after a generation, profile after an edit). */
  refresh: () => Promise<void>
}

const SessionContext = createContext<Session | null>(null)

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ kind: 'loading' })

  const refresh = useCallback(async () => {
    try {
      const user = await getMe()
      setState({ kind: 'signed-in', user })
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) setState({ kind: 'signed-out' })
      else setState((previous) => (previous.kind === 'signed-in' ? previous : { kind: 'failed', error }))
    }
  }, [])

  useEffect(() => {
    void refresh()
  }, [refresh])

  useEffect(() => {
    setUnauthenticatedHandler(() => {
      setState({ kind: 'signed-out' })
      const here = window.location.pathname + window.location.search
      if (!window.location.pathname.startsWith('/login')) {
        navigate(loginPathFor(here, true), { replace: true })
      }
    })
    return () => setUnauthenticatedHandler(null)
  }, [])

  const signedIn = useCallback((user: User) => setState({ kind: 'signed-in', user }), [])
  const signOut = useCallback(async () => {
    try {
      await logout()
    } finally {
      setState({ kind: 'signed-out' })
      navigate('/login')
    }
  }, [])

  const value = useMemo<Session>(
    () => ({
      state,
      user: state.kind === 'signed-in' ? state.user : null,
      signedIn,
      signOut,
      refresh,
    }),
    [state, signedIn, signOut, refresh],
  )
  return createElement(SessionContext.Provider, { value }, children)
}

export function useSession(): Session {
  const session = useContext(SessionContext)
  if (session === null) throw new Error('useSession must be used inside <SessionProvider>')
  return session
}
