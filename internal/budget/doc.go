// Package budget keeps one request budget per customer vault, shared by
// every org whose key lives in it: orgs often share a vault (one company,
// several orgs), and a vault has one request limit (Azure Key Vault: e.g.
// 2,000 RSA-2048 HSM operations per 10 s), which the customer's own
// workloads draw from too.
//
// # Vaults and ceilings
//
// A vault is a [masterkey.Vault], as the cloud's driver names it (Azure: the
// vault host; AWS: account and region; Google: project and location). Each
// cloud has a ceiling, in requests per second for the whole cluster
// ([DefaultCeilings], below every documented limit), and each node spends
// ceiling / live nodes ([Config.Nodes]).
//
// # Priority and fairness
//
// Every call carries a [Class] (from its ctx, see [With]): data-plane cache
// loads first, then Test Managed Key, then probes, then re-wrap jobs. A
// waiting call of a higher class is always admitted before one of a lower
// class, so jobs yield to loads. Within a class the orgs waiting on a vault
// are served in turn (round robin), so one org's mass re-wrap cannot starve
// another org's calls on the same vault.
//
// # AIMD
//
// A throttled answer (Azure HTTP 429, AWS ThrottlingException, Google
// RESOURCE_EXHAUSTED: each driver says which) halves the vault's budget (at most once per
// [Config.DecreaseEvery]) and stops every call to that vault until the
// Retry-After the vault sent (default [DefaultRetryAfter]) has passed; after
// [Config.GrowEvery] without a throttled answer the budget grows back by a
// tenth of the ceiling, up to the ceiling.
//
// # Invariants
//
//   - No call is admitted to a vault before its Retry-After has passed.
//   - Over any window W, a node admits at most rate·W + burst calls to one
//     vault, where rate never exceeds its share of the ceiling and burst is
//     a tenth of a second's worth (at least 1).
//   - No org id reaches a metric or a [State]: states name vaults only.
package budget
