// Thin FHIR REST access with the user's token. fhirclient does the SMART
// launch and keeps (and refreshes) the token; the requests themselves go
// through fetch so that refusals (OperationOutcome with the reason code in
// issue.details) and document bytes can be handled as the server says them.

import { SYSTEM_ACCESS_REASON } from "./texts.js";

export class ApiError extends Error {
  constructor(status, outcome, url) {
    const issue = ((outcome && outcome.issue) || [])[0] || {};
    super(issue.diagnostics || `HTTP ${status}`);
    this.status = status;
    this.outcome = outcome;
    this.url = url;
    this.issueCode = issue.code || "";
    this.diagnostics = issue.diagnostics || "";
    const coding = ((issue.details && issue.details.coding) || []).find((c) => c.system === SYSTEM_ACCESS_REASON);
    this.reason = coding ? coding.code : "";
  }
}

export class Api {
  constructor(client) {
    this.client = client;
    const tr = client.state.tokenResponse || {};
    this.base = String(client.state.serverUrl).replace(/\/+$/, "");
    this.origin = new URL(this.base).origin;
    // The access basis the EHR chose at launch; sent on every request.
    this.basis = tr.nhn_access_basis || "";
  }

  url(path) {
    if (/^https?:\/\//i.test(path)) return path;
    return this.base + "/" + String(path).replace(/^\/+/, "");
  }

  async headers(basis, extra) {
    try {
      await this.client.refreshIfNeeded();
    } catch {
      // An expired session shows as 401 on the request itself.
    }
    const h = { Accept: "application/fhir+json" };
    const auth = this.client.getAuthorizationHeader();
    if (auth) h.Authorization = auth;
    const b = basis === undefined ? this.basis : basis;
    if (b) h["nhn-access-basis"] = b;
    return Object.assign(h, extra || {});
  }

  // check refuses to send the token anywhere but the FHIR server (links
  // in answers are followed only on its origin).
  check(url) {
    if (new URL(url, this.base).origin !== this.origin) {
      throw new ApiError(0, { issue: [{ diagnostics: "address outside the FHIR server: " + url }] }, url);
    }
  }

  // request answers {status, json, etag, location}; non-2xx throws ApiError.
  async request(path, { method = "GET", body, basis, headers } = {}) {
    const url = this.url(path);
    this.check(url);
    const h = await this.headers(basis, headers);
    if (body !== undefined) h["Content-Type"] = "application/fhir+json";
    let res;
    try {
      res = await fetch(url, {
        method, headers: h, mode: "cors", credentials: "omit", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, null, url);
    }
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) throw new ApiError(res.status, json, url);
    return { status: res.status, json, etag: res.headers.get("ETag"), location: res.headers.get("Location") };
  }

  // search follows next links (at most maxPages) and returns the
  // entries and the Bundle of the first page.
  async search(path, opts = {}) {
    const first = await this.request(path, opts);
    const entries = [...((first.json && first.json.entry) || [])];
    let bundle = first.json;
    for (let i = 1; i < (opts.maxPages || 10); i++) {
      const next = ((bundle && bundle.link) || []).find((l) => l.relation === "next");
      if (!next) break;
      bundle = (await this.request(next.url, opts)).json;
      entries.push(...((bundle && bundle.entry) || []));
    }
    return { bundle: first.json, entries };
  }

  // binary fetches a document through the server's proxy as a Blob.
  async binary(url, { basis } = {}) {
    this.check(url);
    const h = await this.headers(basis, { Accept: "*/*" });
    let res;
    try {
      res = await fetch(url, { headers: h, mode: "cors", credentials: "omit", cache: "no-store" });
    } catch {
      throw new ApiError(0, null, url);
    }
    if (!res.ok) {
      let json = null;
      try {
        json = await res.json();
      } catch {
        json = null;
      }
      throw new ApiError(res.status, json, url);
    }
    return res.blob();
  }
}
