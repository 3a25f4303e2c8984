// The same file contract against the remote tree over WebSocket, without FUSE.
import t from 'tap'
import { connectHost } from '../../mount/client.js'
import { execContract } from './contract.js'
import { treeFiles } from './files.js'
import { herdsUp, tempDir } from './harness.js'

const up = await herdsUp(t, 'remote-node')
const connection = await connectHost(up.url, { token: up.adminToken })
t.teardown(() => connection.close())
execContract(t, treeFiles(connection.tree), up.name, tempDir(t))
