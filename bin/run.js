#!/usr/bin/env node
// Entry point of the `pageserver` command. The AWS SDK prints a Node-version warning unless this is set;
// it reads the variable only when a client is constructed, so setting it here is early enough.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
import { execute } from '@oclif/core'
await execute({ dir: import.meta.url })
