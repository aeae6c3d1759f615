/**
 * The dashboard page (docs/dashboard.md): read-only, one React app bundled with its stylesheet
 * into the package (scripts/build-dashboard.mjs). Everything from runs (ids, names, outputs,
 * errors, tags) is rendered as React text, never as HTML.
 */
import { ZOD_JITLESS } from './zod-jitless.js'
import { createRoot } from 'react-dom/client'
import { App } from './app.js'
import { readConfig } from './api.js'

const root = document.getElementById('root')
if (root && ZOD_JITLESS) createRoot(root).render(<App config={readConfig()} />)
