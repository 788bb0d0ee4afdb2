"""One queue for every forward pass of a shared model, run as padded batches.

A class of thirty asks one model at once. One at a time, thirty single-token
decode steps cost thirty reads of every weight; as one batch they cost about
one (the weights are read once per step, whatever the batch). So every
forward pass of a loaded model (``LoadedModel.forward``) is a request on a
queue; a worker thread takes everything waiting, runs it as padded batches
and hands each caller its own rows of logits and its own cache.

* ``kv``: a stream's keys and values (``KVStore``, ``KVHandle``) and the slab
  cache a batched pass runs on;
* ``plan``: how the waiting requests are cut into batches (one adapter
  setting or several mixed LoRA adapters per batch, padding kept small);
* ``queue``: what both engines share: the queue of requests and its worker thread;
* ``worker``: the ``Engine`` itself (the batched pass on that queue);
* ``llamacpp``: the same interface over llama.cpp in this process, for a GGUF
  model with no adapter (``LlamaCppEngine``: one context, a sequence per text).

transformers' own continuous batching (5.24) runs on a CPU but cannot serve
this: it samples inside its worker and returns no full-vocabulary logits, a
person cannot append a token of their choosing, it has no single pass that
returns every position (scoring), and it knows nothing of per-request
adapters. See README, "A class on one machine".
"""
