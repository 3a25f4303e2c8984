/**
 * The Herds SDK: `import { Herds } from 'herds'`. One API over two transports,
 * Herds.connect (WebSocket) and Herds.open (a mount), made only of file
 * operations on the contract (docs/sdk.md).
 */
export { Herds, HerdsNode, Job, Folder, Sandbox, Volume, LOGIN_SHELL } from './herds.js'
export type { ConnectOptions, NodeSummary, OutputChunk, RunOptions, RunResult, TtyOptions } from './herds.js'
export type { Appender, FileStat, Transport } from './transport.js'
export type { ForwardOptions, Forwarding } from './forward.js'
export { HerdsError } from '../../tree/errno.js'
export type { Errno } from '../../tree/errno.js'
