// A Prisma generator that writes the DMMF it receives to the file in $DMMF_OUT. Prisma speaks
// JSON-RPC to generators: requests on the generator's stdin, one JSON answer per line on stderr.
import { writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

createInterface({ input: process.stdin }).on('line', (line) => {
  const message = JSON.parse(line)
  const reply = (result) => process.stderr.write(`${JSON.stringify({ jsonrpc: '2.0', id: message.id, result })}\n`)
  if (message.method === 'getManifest') {
    reply({ manifest: { prettyName: 'DMMF dump', requiresEngines: [] } })
  } else if (message.method === 'generate') {
    writeFileSync(process.env.DMMF_OUT, JSON.stringify(message.params.dmmf))
    reply(null)
  }
})
