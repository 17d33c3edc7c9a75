// "Load more" for cursor lists: a button for keyboards, pressed by itself when it scrolls
// into view (infinite scroll) where the browser can tell.

import { useEffect, useRef } from 'react'
import { useI18n } from '../i18n.ts'

export function LoadMore({ onLoad }: { onLoad: () => void }) {
  const { t } = useI18n()
  const button = useRef<HTMLButtonElement>(null)
  const load = useRef(onLoad)
  useEffect(() => {
    load.current = onLoad
  })

  useEffect(() => {
    const element = button.current
    if (element === null || typeof IntersectionObserver === 'undefined') return
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) load.current()
    })
    observer.observe(element)
    return () => observer.disconnect()
  }, [])

  return (
    <button ref={button} type="button" className="button button-quiet" onClick={() => load.current()}>
      {t('library.loadMore')}
    </button>
  )
}
