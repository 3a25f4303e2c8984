// The file contract through a real FUSE mount made by `herds up`.
import t from 'tap'
import { execContract } from './contract.js'
import { fuseFiles } from './files.js'
import { herdsUp, tempDir } from './harness.js'

const up = await herdsUp(t)
execContract(t, fuseFiles(up.mountpoint), up.name, tempDir(t))
