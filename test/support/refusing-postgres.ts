/**
 * A socket that answers every connection's start-up as PostgreSQL does when it refuses it: one
 * `FATAL` ErrorResponse, then the connection closes. It stands in for refusals a test cannot get
 * from the server it has (no user name, an unknown database on PGlite), on any machine.
 */
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'

/** What the server says: the SQLSTATE, the message, and where in PostgreSQL it comes from. */
export interface PostgresRefusal {
  /** SQLSTATE, e.g. `28000` (invalid authorization) or `3D000` (no such database). */
  code: string
  message: string
  /** The source file PostgreSQL names (the `F` field). @default 'postmaster.c' */
  file?: string
  /** The routine PostgreSQL names (the `R` field). @default 'ProcessStartupPacket' */
  routine?: string
}

/** A refusing server on a free port of 127.0.0.1. */
export interface RefusingPostgres {
  readonly port: number
  /** Stops listening. */
  close(): Promise<void>
}

/** PostgreSQL's refusal of a database that does not exist. */
export function noSuchDatabase(database: string): PostgresRefusal {
  return { code: '3D000', message: `database "${database}" does not exist`, file: 'postinit.c', routine: 'InitPostgres' }
}

/** Starts a server that refuses every connection with `refusal`. */
export async function startRefusingPostgres(refusal: PostgresRefusal): Promise<RefusingPostgres> {
  const { code, message, file = 'postmaster.c', routine = 'ProcessStartupPacket' } = refusal
  const server = createServer((socket) => {
    socket.once('data', () => {
      const fields = ['SFATAL', 'VFATAL', `C${code}`, `M${message}`, `F${file}`, `R${routine}`]
      const payload = Buffer.concat([...fields.map((field) => Buffer.from(`${field}\0`)), Buffer.from([0])])
      const header = Buffer.alloc(5)
      header.write('E', 0)
      header.writeInt32BE(payload.length + 4, 1)
      socket.end(Buffer.concat([header, payload]))
    })
    socket.on('error', () => undefined)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
