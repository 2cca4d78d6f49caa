"""The HF CPU rollout backend (``actor_rollout_ref.rollout.name=hf``): for CPU smoke runs and CI only.

verl 0.9.1's rollouts are servers. This backend is a Ray actor that samples with HF
``transformers`` (:mod:`.server`), a replica that starts it (:mod:`.replica`) and the
trainer-side adapter that syncs weights into it (:mod:`.adapter`). It is slow and serves
one request at a time; on GPUs keep vLLM. Importing this package imports nothing:
:mod:`.registry` registers the backend lazily in verl.
"""
