/**
 * The page test/react/components.test.ts opens in Chromium: RunTimeline and RunList as an app
 * mounts them, live against the real handlers. Bundled with esbuild by the test. Query: `run`
 * (a run to follow), `list=1` (the list), `secret` (sent as X-Webhook-Secret: a test page only;
 * a real page uses a read token or the app's session).
 */
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { RunList, RunTimeline } from '../../src/react/index.js'

const params = new URLSearchParams(location.search)
const secret = params.get('secret') ?? ''
const headers = { 'X-Webhook-Secret': secret }
const runId = params.get('run')

function App() {
  return (
    <main className="page">
      <h1 className="page-title">Pipeline components</h1>
      {runId ? <RunTimeline runId={runId} url="/api/pipeline" options={{ headers }} /> : null}
      {params.get('list') ? (
        <section aria-label="Runs" className="page-list">
          <RunList
            url="/api/pipeline"
            headers={headers}
            renderLink={({ run, children, className }) => (
              <a className={className} href={`?run=${encodeURIComponent(run.id)}&secret=${encodeURIComponent(secret)}`}>
                {children}
              </a>
            )}
          />
        </section>
      ) : null}
    </main>
  )
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
