"""moto_server with moto's CloudFormation brought in line with AWS (see tests/cfn_moto.py).

Run as ``python -m tests.e2e.aws_like_moto_server -H 127.0.0.1 -p PORT`` from the repository
root; it takes moto_server's arguments. moto 5.x does not refresh a stack's Outputs and
parameters when a change set is executed, and keeps executed change sets listed; AWS does both
(its documented behaviour, which ``deploy_stack`` relies on to print the outputs and to see an
unchanged redeploy). The server applies ``aws_like_change_sets`` for its whole life, so the
deploy runs over real HTTP against AWS's behaviour and no test has to accept moto's.
"""

from __future__ import annotations

from moto.server import main

from tests.cfn_moto import aws_like_change_sets

if __name__ == "__main__":
    with aws_like_change_sets():
        main()
