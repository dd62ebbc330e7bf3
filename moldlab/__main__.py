from moldlab.cli import main

raise SystemExit(main())
