// npm sm-crypto (what government front ends use), driven by menwei's interop tests.
//   node sm_crypto.mjs keygen                       -> {"private": hex, "public": "04..."}
//   node sm_crypto.mjs sign '{"private", "public", "msg", "der", "hash", "userId"}' -> signature hex
//   node sm_crypto.mjs verify '{"public", "msg", "sig", "der", "userId"}' -> "true" / "false"
//   node sm_crypto.mjs encrypt '{"public", "msg"}' -> C1C3C2 hex without the 04 prefix
//   node sm_crypto.mjs decrypt '{"private", "ct"}' -> plaintext (ct: C1C3C2 hex without 04)
import smCrypto from 'sm-crypto';

const { sm2 } = smCrypto;
const [cmd, arg] = process.argv.slice(2);
if (cmd === 'keygen') {
  const k = sm2.generateKeyPairHex();
  process.stdout.write(JSON.stringify({ private: k.privateKey, public: k.publicKey }));
} else if (cmd === 'sign') {
  const a = JSON.parse(arg);
  const opts = { der: !!a.der, hash: a.hash !== false, publicKey: a.public };
  if (a.userId !== undefined) opts.userId = a.userId;
  process.stdout.write(sm2.doSignature(a.msg, a.private, opts));
} else if (cmd === 'verify') {
  const a = JSON.parse(arg);
  const opts = { der: !!a.der, hash: true };
  if (a.userId !== undefined) opts.userId = a.userId;
  process.stdout.write(String(sm2.doVerifySignature(a.msg, a.sig, a.public, opts)));
} else if (cmd === 'encrypt') {
  // cipherMode 1 = C1C3C2; the output has no 04 prefix.
  const a = JSON.parse(arg);
  process.stdout.write(sm2.doEncrypt(a.msg, a.public, 1));
} else if (cmd === 'decrypt') {
  const a = JSON.parse(arg);
  process.stdout.write(sm2.doDecrypt(a.ct, a.private, 1));
} else {
  process.stderr.write('usage: sm_crypto.mjs keygen | sign JSON | verify JSON\n');
  process.exit(2);
}
