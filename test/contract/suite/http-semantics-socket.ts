/** Contract scenarios, HTTP on a socket: what only a real port shows, a client that writes its whole upload before reading. */
import { connect } from 'node:net'
import { describe, expect } from 'vitest'
import { SECRET } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeHttpSemanticsSocket({ name, socketScenario, transport }: ContractContext): void {
  // Only a real port has connections to close; other targets get no such block (an empty one fails).
  if (transport === 'socket') describe(`${name}: HTTP semantics, socket`, () => {
    socketScenario(
      'a client that writes its whole upload before reading (as Python requests does) reads the 413, then a clean close',
      async (api, baseUrl) => {
        const id = await api.createRun()
        const url = new URL(`${baseUrl}/${id}/stage-update`)
        const body = Buffer.alloc(16 * 1024 * 1024, 0x20)
        const { text, error } = await new Promise<{ text: string; error: string | undefined }>((resolve) => {
          const socket = connect(Number(url.port), url.hostname)
          let text = ''
          socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')))
          socket.on('end', () => socket.end())
          socket.once('error', (error: NodeJS.ErrnoException) => resolve({ text, error: error.code }))
          socket.once('close', () => resolve({ text, error: undefined }))
          socket.write(
            `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nX-Webhook-Secret: ${SECRET}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
          )
          socket.write(body)
        })
        expect(error).toBeUndefined()
        expect(text).toMatch(/^HTTP\/1\.1 413 /)
        expect(text).toMatch(/\r\nconnection: close\r\n/i)
        expect(text).toContain('"code":"payload_too_large"')
        expect((await api.status(id)).stages).toEqual([])
      },
      { maxBodyBytes: 1024 },
    )
  })
}
