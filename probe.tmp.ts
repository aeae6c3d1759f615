import { startExpressExample } from './examples/express/app.ts'
import { subscribeToRun } from './src/index.ts'
const example = await startExpressExample({ port: 0, secret: 's', log: { info() {}, warn() {}, error() {} } })
const subs = []
for (let i = 0; i < 8; i++) {
  const id = `run-${i}`
  await fetch(`${example.url}/runs`, { method: 'POST', headers: { 'x-webhook-secret': 's', 'content-type': 'application/json' }, body: JSON.stringify({ id }) })
  subs.push(subscribeToRun(id, { url: example.url, headers: { 'x-webhook-secret': 's' } }))
}
await new Promise((r) => setTimeout(r, 1500))
console.log('states', subs.map((s) => s.state).join(','))
const t = performance.now()
await example.close()
console.log('close took', Math.round(performance.now() - t), 'ms')
for (const s of subs) s.close()
process.exit(0)
