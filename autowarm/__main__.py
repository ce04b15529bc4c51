from autowarm._cli import main

raise SystemExit(main())
