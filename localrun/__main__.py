from localrun.server import main

main()
