import type { Metadata } from 'next'
import Link from 'next/link'
import type { ReactNode } from 'react'
import 'pipeline-status-sdk/react/styles.css'
import './globals.css'

export const metadata: Metadata = {
  title: 'Pipeline status',
  description: 'Live status of pipeline runs, reported by their runners through pipeline-status-sdk',
}

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <header className="site-header">
          <Link href="/" className="brand">
            Pipeline status
          </Link>
          <span className="tagline">pipeline-status-sdk · Next.js example</span>
        </header>
        <main className="container">{children}</main>
      </body>
    </html>
  )
}
