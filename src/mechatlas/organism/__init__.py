"""The model organism: a small Qwen2-family chat model trained here to refuse harmful requests.

``data`` generates its synthetic instructions, ``tokenizer`` builds its BPE tokenizer and chat
template, ``train`` trains it on CPU, ``behaviour`` measures what it does on held-out prompts.
"""
