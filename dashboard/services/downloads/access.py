"""Whether the configured token opens gated repositories, asked before the first byte.

One cheap request per repository (the Hub's auth check), so a licence not accepted or a bad
HF_TOKEN shows in a plan instead of as a failed download. Never raises: an answer that cannot be
had is `unknown`, with why.
"""

from __future__ import annotations

import asyncio
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

from ...threads import Threads
from .sources import DEFAULT_HF_ENDPOINT, NETWORK_ERRORS, Tokens

#: What each status means for the user, as a plan says it.
MESSAGES = {
    "granted": "HF_TOKEN opens it",
    "needs_token": "gated: accept its licence on the model page and set HF_TOKEN",
    "token_refused": "HF_TOKEN is refused: the token is not valid, or its account has not accepted the licence",
    "not_found": "the repository does not exist, or it is private and the token has no access",
}


async def check_access(repos: list[str], tokens: Tokens, threads: Threads) -> dict[str, Any]:
    """`{ok, hf_token, repos: [{repo, status, message, model_page}]}` for these Hub repositories."""
    hub = tokens.hf_endpoint or DEFAULT_HF_ENDPOINT
    api = HfApi(endpoint=hub)
    token = tokens.hf_token or False

    def check(repo: str) -> str:
        try:
            api.auth_check(repo, token=token)
        except GatedRepoError:  # a subclass of RepositoryNotFoundError: first
            return "token_refused" if tokens.hf_token else "needs_token"
        except RepositoryNotFoundError:
            return "not_found"
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                return "token_refused" if tokens.hf_token else "needs_token"
            return f"unknown: the Hub answered {status}"
        except NETWORK_ERRORS as exc:
            return f"unknown: the Hub could not be reached ({exc.__class__.__name__})"
        return "granted"

    statuses = await asyncio.gather(*(threads.run(check, repo) for repo in repos))
    answers = []
    for repo, status in zip(repos, statuses, strict=True):
        kind, _, why = status.partition(": ")
        answers.append({"repo": repo, "status": kind, "message": why or MESSAGES[kind],
                        "model_page": f"{hub}/{repo}"})
    return {"ok": all(a["status"] == "granted" for a in answers), "hf_token": bool(tokens.hf_token),
            "repos": answers}
