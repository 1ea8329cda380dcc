"""`python -m syncd.sim`: run the Graph and J1 simulators and print the syncd config."""

from syncd.sim.runner import main

raise SystemExit(main())
