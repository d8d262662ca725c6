// Entry point bundled by tests/ui.test.mjs (with esbuild) so node can use the generated TypeScript client
// over plain gRPC (HTTP/2) with @connectrpc/connect-node.
import { createGrpcTransport } from "@connectrpc/connect-node";
import { bearerAuth, hushClients, type HushClients } from "../../src/api";

export function nodeClients(baseUrl: string, token: () => string | undefined): HushClients {
  return hushClients(createGrpcTransport({ baseUrl, interceptors: [bearerAuth(token)] }));
}
