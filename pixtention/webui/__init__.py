"""WebUI glue (A1111 and Forge): thin adapters between the WebUI's hooks and the core.

- ``args``: the frozen API arg order and its validation; ``infotext``: the ``PixTention`` value;
- ``ui`` (+ ``views``): the Gradio accordion, no torch; ``settings``: the Settings section;
- ``hooks``: what each ``Script`` method does; ``a1111``/``forge``: the per-WebUI hook flows;
  ``jobs``: the state of one generation;
- ``service``: background indexing and suggestions; ``routes``: ``/pixtention/v1`` REST;
  ``masks``: recent mask pictures; ``runtime``: the process-wide state and callbacks.
"""
