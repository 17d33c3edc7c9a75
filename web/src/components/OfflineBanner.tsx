// Says when the browser has lost its network, so failed actions make sense.

import { useSyncExternalStore } from 'react'
import { useI18n } from '../i18n.ts'

function subscribe(onChange: () => void): () => void {
  window.addEventListener('online', onChange)
  window.addEventListener('offline', onChange)
  return () => {
    window.removeEventListener('online', onChange)
    window.removeEventListener('offline', onChange)
  }
}

export function OfflineBanner() {
  const { t } = useI18n()
  const online = useSyncExternalStore(subscribe, () => navigator.onLine)
  if (online) return null
  return (
    <div role="alert" className="banner banner-warn">
      {t('offline.message')}
    </div>
  )
}
