/**
 * The client side of PostgreSQL password authentication: cleartext, MD5 and SASL SCRAM-SHA-256.
 *
 * Pure computations over strings and bytes (node:crypto only, no sockets): the replication connection
 * feeds server challenges in and sends the answers out. SCRAM follows RFC 5802 / RFC 7677 as PostgreSQL 15
 * speaks it (`fe-auth-scram.c`): the client-first message carries an empty user name (`n=,r=<nonce>`,
 * the server uses the startup user), the GS2 header is `n,,` because we never use TLS and therefore never
 * channel binding, and the client nonce is 18 random bytes in base64.
 *
 *   SaltedPassword  = PBKDF2-HMAC-SHA-256(password, salt, i)          (RFC 5802 "Hi")
 *   ClientKey       = HMAC(SaltedPassword, "Client Key");  StoredKey = SHA-256(ClientKey)
 *   AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
 *   ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)   -> must equal "v=" of server-final
 *
 * Invariants: the server's nonce must extend ours; the iteration count and salt are bounded before any
 * work (a hostile server could ask for 2^31 PBKDF2 rounds); the server signature is compared in constant
 * time and a mismatch is an error (the server did not prove it knows the password).
 *
 * SASLprep is approximated: ASCII passwords pass unchanged (exactly as PostgreSQL does); others are
 * NFKC-normalised with non-ASCII spaces mapped to U+0020 and "mapped to nothing" characters removed, and
 * fall back to the raw bytes when prohibited characters remain, which is also PostgreSQL's fallback.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import { UnsupportedError, UsageError, CorruptionError } from '../lib/errors.js'

/** PostgreSQL's default is 4096; 1,000,000 rounds already cost about a second, so more is refused. */
export const scramIterationsMax = 1_000_000
/** PostgreSQL uses 16-byte salts; anything past this is not a salt. */
export const scramSaltBytesMax = 1024
/** Longest SCRAM server message we parse (PostgreSQL's are under 200 bytes). */
export const scramMessageLengthMax = 4096
/** Raw client nonce length, as libpq (SCRAM_RAW_NONCE_LEN). */
export const scramNonceBytes = 18

export const SCRAM_SHA_256 = 'SCRAM-SHA-256'

const PASSWORD_HINT =
  'Give the password in the connection string (password=... or postgresql://user:password@host/) or in PGPASSWORD. ' +
  "A timeline's WAL source is stored without its password: `pageserver serve` and `pageserver timeline sync` take it " +
  'from PGPASSWORD or a password file (PGPASSFILE, else ~/.pgpass, mode 0600; a line host:port:replication:user:password).'

export function passwordRequired(method: string): UsageError {
  return new UsageError('PG_PASSWORD_REQUIRED', `the server asks for ${method} password authentication but no password was given`, {
    hint: PASSWORD_HINT,
  })
}

/** AuthenticationMD5Password answer: "md5" + md5hex(md5hex(password + user) + salt). */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  if (salt.length !== 4) throw new CorruptionError('PG_AUTH_PROTOCOL', `MD5 salt must be 4 bytes, got ${salt.length}`, { hint: 'The server is not speaking the PostgreSQL protocol correctly.' })
  const inner = createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex')
  return 'md5' + createHash('md5').update(inner, 'ascii').update(salt).digest('hex')
}

/** Picks SCRAM-SHA-256 from the server's list; SCRAM-SHA-256-PLUS needs TLS, which we do not speak. */
export function chooseSaslMechanism(mechanisms: readonly string[]): typeof SCRAM_SHA_256 {
  if (mechanisms.includes(SCRAM_SHA_256)) return SCRAM_SHA_256
  throw new UnsupportedError('PG_SASL_MECHANISM', `the server offers SASL mechanisms ${mechanisms.join(', ') || '(none)'}; only ${SCRAM_SHA_256} is supported`, {
    hint: 'Allow scram-sha-256 (or md5/password) for this client in pg_hba.conf.',
  })
}

const SASL_MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu
const SASL_NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu
// Control characters, private use, surrogates and non-characters: RFC 4013 prohibited output (approximation).
const SASL_PROHIBITED = /[\u0000-\u001F\u007F-\u009F\uE000-\uF8FF\uFFF9-\uFFFF]/u

/** SASLprep as PostgreSQL applies it to passwords (see the module header for what is approximated). */
export function saslPrep(password: string): string {
    if (/^[\u0000-\u007F]*$/.test(password)) return password
  const mapped = password.replace(SASL_NON_ASCII_SPACE, ' ').replace(SASL_MAPPED_TO_NOTHING, '').normalize('NFKC')
  if (mapped === '' || SASL_PROHIBITED.test(mapped)) return password
  return mapped
}

function scramError(message: string): CorruptionError {
  return new CorruptionError('PG_SCRAM_PROTOCOL', message, {
    hint: 'The server sent a malformed SCRAM message; check that host and port point to PostgreSQL.',
  })
}

/** Parses "k=v,k=v" in the order given (SCRAM attributes are positional). */
function readAttributes(message: string, expected: readonly string[], what: string): string[] {
  if (message.length > scramMessageLengthMax) throw scramError(`${what} is ${message.length} bytes long; at most ${scramMessageLengthMax} are accepted`)
  const parts = message.split(',')
  const out: string[] = []
  for (let i = 0; i < expected.length; i++) {
    const p = parts[i]
    if (p === undefined || p.length < 2 || p[0] !== expected[i] || p[1] !== '=') {
      throw scramError(`malformed ${what}: expected attribute "${expected[i]}" at position ${i + 1}`)
    }
    out.push(p.slice(2))
  }
  if (parts.length > expected.length) throw scramError(`malformed ${what}: unexpected data after the last attribute`)
  return out
}

function decodeBase64Strict(text: string, what: string): Buffer {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) throw scramError(`${what} is not valid base64`)
  return Buffer.from(text, 'base64')
}

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text, 'utf8').digest()
}

/**
 * One SCRAM-SHA-256 exchange. Use once: clientFirstMessage() -> clientFinalMessage(serverFirst) ->
 * verifyServerFinal(serverFinal). `clientNonce` is for tests with known vectors; leave it out otherwise.
 */
export class ScramSha256Client {
  private readonly clientNonce: string
  private readonly clientFirstBare: string
  private expectedServerSignature: Buffer | undefined
  private state: 'initial' | 'first-sent' | 'final-sent' | 'done' = 'initial'

  constructor(
    private readonly password: string,
    clientNonce?: string,
  ) {
    this.clientNonce = clientNonce ?? randomBytes(scramNonceBytes).toString('base64')
    if (this.clientNonce.includes(',')) throw new UsageError('PG_SCRAM_NONCE', 'a SCRAM nonce must not contain ","', { hint: 'Leave the nonce out; a random one is generated.' })
    this.clientFirstBare = `n=,r=${this.clientNonce}`
  }

  /** The SASLInitialResponse payload: GS2 header "n,," (no channel binding) + client-first-bare. */
  clientFirstMessage(): string {
    if (this.state !== 'initial') throw scramError('SCRAM exchange used out of order')
    this.state = 'first-sent'
    return `n,,${this.clientFirstBare}`
  }

  /** Reads server-first ("r=...,s=...,i=...") and returns client-final ("c=biws,r=...,p=..."). */
  clientFinalMessage(serverFirst: string): string {
    if (this.state !== 'first-sent') throw scramError('SCRAM exchange used out of order')
    const [nonce, saltB64, iterText] = readAttributes(serverFirst, ['r', 's', 'i'], 'SCRAM server-first message') as [string, string, string]
    if (nonce.length <= this.clientNonce.length || !nonce.startsWith(this.clientNonce)) {
      throw scramError('SCRAM nonce mismatch: the server nonce does not extend the client nonce')
    }
    if (!/^[1-9]\d{0,9}$/.test(iterText)) throw scramError(`invalid SCRAM iteration count "${iterText}"`)
    const iterations = Number(iterText)
    if (iterations > scramIterationsMax) {
      throw scramError(`the server asks for ${iterations} SCRAM iterations; at most ${scramIterationsMax} are accepted`)
    }
    if (saltB64.length > Math.ceil(scramSaltBytesMax / 3) * 4) throw scramError(`SCRAM salt is longer than ${scramSaltBytesMax} bytes`)
    const salt = decodeBase64Strict(saltB64, 'SCRAM salt')
    if (salt.length === 0) throw scramError('SCRAM salt is empty')

    const saltedPassword = pbkdf2Sync(Buffer.from(saslPrep(this.password), 'utf8'), salt, iterations, 32, 'sha256')
    const clientKey = hmac(saltedPassword, 'Client Key')
    const storedKey = createHash('sha256').update(clientKey).digest()
    const withoutProof = `c=biws,r=${nonce}`
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`
    const clientSignature = hmac(storedKey, authMessage)
    const proof = Buffer.alloc(clientKey.length)
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!
    this.expectedServerSignature = hmac(hmac(saltedPassword, 'Server Key'), authMessage)
    this.state = 'final-sent'
    return `${withoutProof},p=${proof.toString('base64')}`
  }

  /** Checks server-final ("v=<signature>"); an "e=" error or a wrong signature throws. */
  verifyServerFinal(serverFinal: string): void {
    if (this.state !== 'final-sent' || this.expectedServerSignature === undefined) throw scramError('SCRAM exchange used out of order')
    if (serverFinal.startsWith('e=')) {
      throw new UsageError('PG_AUTH_FAILED', `SCRAM authentication failed: ${serverFinal.slice(2, 200)}`, { hint: PASSWORD_HINT })
    }
    const [sigB64] = readAttributes(serverFinal, ['v'], 'SCRAM server-final message') as [string]
    const sig = decodeBase64Strict(sigB64, 'SCRAM server signature')
    if (sig.length !== this.expectedServerSignature.length || !timingSafeEqual(sig, this.expectedServerSignature)) {
      throw new CorruptionError('PG_SCRAM_SERVER_SIGNATURE', 'the server failed to prove that it knows the password (SCRAM server signature mismatch)', {
        hint: 'Check that the connection string points at the intended server; something may be impersonating it.',
      })
    }
    this.state = 'done'
  }

  get completed(): boolean {
    return this.state === 'done'
  }
}
