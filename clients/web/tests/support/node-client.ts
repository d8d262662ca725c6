// Entry point bundled by the browser tests (with esbuild) so node can use the generated TypeScript client
// over plain gRPC (HTTP/2) with @connectrpc/connect-node; `ca` (PEM) trusts a private or self-signed certificate
// of an https server.
import { createGrpcTransport } from "@connectrpc/connect-node";
import { bearerAuth, hushClients, type HushClients } from "../../src/api";

export function nodeClients(baseUrl: string, token: () => string | undefined, ca?: string): HushClients {
  return hushClients(
    createGrpcTransport({ baseUrl, interceptors: [bearerAuth(token)], nodeOptions: ca ? { ca } : undefined }),
  );
}
